#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report
//! Bad input, generated (proptest), each target for a bounded time: the region GeoJSON import,
//! the sketch and photo image decoders, the reports import (CSV and GeoJSON, through a real
//! database) and the coordinate parsers (the point type and the HTTP routes that take
//! coordinates). Inputs are valid samples broken by random mutations (bit flips, cut, spliced,
//! repeated or inserted bytes, extreme numbers) and structured inputs built from scratch.
//!
//! Each target must answer every input without a panic, with its documented kind of error, and
//! without writing anything half; the process's heap is capped ([`gridwatch::HEAP`]) at what it
//! held plus [`MEMORY`], so an input that makes a parser allocate without bound aborts the
//! test. A failure prints the smallest input proptest could shrink it to and the seed to replay
//! it (`GRIDWATCH_FUZZ_SEED`). `GRIDWATCH_FUZZ_SECONDS` sets the time per target (default 8).

#[allow(dead_code)] // the integration tests' helpers; this binary uses a few
#[path = "../integration/support.rs"]
mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};
use std::time::{Duration, Instant};

/// One target at a time: they share the heap cap and the machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Heap one input may make the process hold on top of what it held before the target.
const MEMORY: usize = 1 << 30;

fn budget() -> Duration {
    let seconds = std::env::var("GRIDWATCH_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8.0);
    Duration::from_secs_f64(seconds)
}

fn seed() -> u64 {
    std::env::var("GRIDWATCH_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// Runs `test` on values of `strategy` until the time budget is spent; on a failure, shrinks it
/// and panics with the smallest failing input.
fn fuzz<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let seed = seed();
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config {
            failure_persistence: None,
            max_shrink_iters: 2_000,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    );
    let _one_at_a_time = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let held = gridwatch::HEAP.allocated();
    gridwatch::HEAP.set_limit(held + MEMORY).unwrap();
    let started = Instant::now();
    let mut cases = 0u64;
    while started.elapsed() < budget() {
        let tree = strategy.new_tree(&mut runner).unwrap();
        match runner.run_one(tree, &test) {
            Ok(_) => cases += 1,
            Err(TestError::Fail(why, input)) => {
                gridwatch::HEAP.set_limit(usize::MAX).unwrap();
                panic!("fuzz {name} (GRIDWATCH_FUZZ_SEED={seed}) failed after {cases} cases: {why}\nsmallest input: {input:?}")
            }
            Err(TestError::Abort(why)) => panic!("fuzz {name}: aborted: {why}"),
        }
    }
    gridwatch::HEAP.set_limit(usize::MAX).unwrap();
    println!(
        "fuzz {name}: {cases} inputs in {:.1} s, no failure (seed {seed}; heap now {:.1} MiB)",
        started.elapsed().as_secs_f64(),
        gridwatch::HEAP.allocated() as f64 / 1048576.0
    );
    assert!(cases > 0, "fuzz {name}: no input was tried");
}

/// One change to a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    /// copy `len` bytes from one place over another
    Splice(usize, usize, usize),
    /// a boundary value (0, 0xFF…, 0x7F…, 0x80…) written over 1, 2 or 4 bytes
    Extreme(usize, u8, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        3 => (at, 0u8..8).prop_map(|(a, b)| Mutation::Flip(a, b)),
        2 => (at, any::<u8>()).prop_map(|(a, b)| Mutation::Set(a, b)),
        2 => (at, prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(a, b)| Mutation::Insert(a, b)),
        2 => (at, 1usize..64).prop_map(|(a, n)| Mutation::Delete(a, n)),
        1 => at.prop_map(Mutation::Truncate),
        1 => (at, at, 1usize..256).prop_map(|(a, b, n)| Mutation::Splice(a, b, n)),
        2 => (at, 0u8..4, prop::sample::select(vec![1usize, 2, 4])).prop_map(|(a, v, w)| Mutation::Extreme(a, v, w)),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        let pos = |a: usize| if len == 0 { 0 } else { a % len };
        match m {
            Mutation::Flip(a, bit) if len > 0 => bytes[pos(*a)] ^= 1 << bit,
            Mutation::Set(a, b) if len > 0 => bytes[pos(*a)] = *b,
            Mutation::Insert(a, ins) => {
                let p = pos(*a);
                bytes.splice(p..p, ins.iter().copied());
            }
            Mutation::Delete(a, n) if len > 0 => {
                let p = pos(*a);
                bytes.drain(p..(p + n).min(len));
            }
            Mutation::Truncate(a) => bytes.truncate(pos(*a)),
            Mutation::Splice(from, to, n) if len > 0 => {
                let (f, t) = (pos(*from), pos(*to));
                let n = (*n).min(len - f).min(len - t);
                let chunk = bytes[f..f + n].to_vec();
                bytes[t..t + n].copy_from_slice(&chunk);
            }
            Mutation::Extreme(a, v, w) if len >= *w => {
                let p = pos(*a).min(len - w);
                let fill: [u8; 4] = match v {
                    0 => [0; 4],
                    1 => [0xFF; 4],
                    2 => [0x7F, 0xFF, 0xFF, 0xFF],
                    _ => [0x80, 0, 0, 0],
                };
                bytes[p..p + w].copy_from_slice(&fill[..*w]);
            }
            _ => {}
        }
    }
    bytes
}

/// A valid sample, broken by up to 8 mutations.
fn mutated(samples: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(samples),
        prop::collection::vec(mutation(), 0..8),
    )
        .prop_map(|(s, m)| apply(s, &m))
}

/// Numbers as text that parsers meet: ordinary, extreme, not numbers at all.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (-200.0f64..200.0).prop_map(|v| v.to_string()),
        2 => any::<f64>().prop_map(|v| v.to_string()),
        2 => prop::sample::select(vec![
            "", "NaN", "nan", "inf", "-inf", "infinity", "1e309", "-1e309", "1e-330", "-0", "0x10",
            "106,8", "106.8.1", " 106.8", "106.8 ", "+106.8", "１０６.８", "106°50′", "\u{0}", "--1",
            "9".repeat(400).leak(),
        ]).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
    ]
}

fn demo_features(prefix: &str) -> Vec<u8> {
    let doc: serde_json::Value = serde_json::from_str(gridwatch::demo::REGIONS_GEOJSON).unwrap();
    let features: Vec<serde_json::Value> = doc["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["properties"]["code"]
                .as_str()
                .unwrap()
                .starts_with(prefix)
        })
        .cloned()
        .collect();
    assert!(!features.is_empty());
    serde_json::to_vec(&serde_json::json!({"type": "FeatureCollection", "features": features}))
        .unwrap()
}

/// A FeatureCollection built from scratch: features of any geometry type with rings of random
/// points (unclosed, too short, self-crossing, out of range) and random codes and levels.
fn region_collection() -> impl Strategy<Value = serde_json::Value> {
    let coord = prop_oneof![
        4 => (106.7f64..106.9, 39.6f64..39.75).prop_map(|(x, y)| serde_json::json!([x, y])),
        1 => (any::<f64>(), any::<f64>()).prop_map(|(x, y)| serde_json::json!([x, y])),
        1 => prop::collection::vec(-1e3f64..1e3, 0..4).prop_map(|v| serde_json::json!(v)),
        1 => Just(serde_json::json!("106.8,39.6")),
    ];
    let ring = prop::collection::vec(coord, 0..12).prop_map(|mut r| {
        if r.len() > 2 {
            let first = r[0].clone();
            r.push(first);
        }
        serde_json::Value::Array(r)
    });
    let geometry = (
        prop::sample::select(vec![
            "Polygon",
            "MultiPolygon",
            "Point",
            "LineString",
            "GeometryCollection",
            "polygon",
        ]),
        prop::collection::vec(ring, 0..3),
    )
        .prop_map(|(t, rings)| match t {
            "MultiPolygon" => serde_json::json!({"type": t, "coordinates": [rings]}),
            _ => serde_json::json!({"type": t, "coordinates": rings}),
        });
    let code = prop_oneof![
        Just("150302".to_owned()),
        Just("150302001".to_owned()),
        Just("150302001001".to_owned()),
        Just("150302001001901".to_owned()),
        Just("15030200100190101".to_owned()),
        "[0-9]{0,20}",
        "\\PC{0,8}",
    ];
    let feature = (
        geometry,
        code,
        prop::option::of(prop::sample::select(vec![
            "district",
            "street",
            "community",
            "grid",
            "micro_grid",
            "城市",
        ])),
        prop::option::of("\\PC{0,120}"),
        prop::option::of(prop::sample::select(vec![
            "150302",
            "150302001",
            "150302001001",
            "99",
        ])),
    )
        .prop_map(|(geometry, code, level, name, parent)| {
            serde_json::json!({"type": "Feature", "geometry": geometry, "properties": {
                "code": code, "level": level, "name": name, "parent_code": parent,
                "party_branch": {"name": "党支部"},
                "staff": [{"name": "张三", "phone": "0473-0000000", "role": "grid_leader"}],
            }})
        });
    prop::collection::vec(feature, 0..6)
        .prop_map(|f| serde_json::json!({"type": "FeatureCollection", "features": f}))
}

#[test]
fn fuzz_the_region_geojson_import() {
    let samples = vec![
        demo_features("150302001001"),
        std::fs::read(support::repo_dir().join("geodata/source/150302.geojson")).unwrap(),
    ];
    // A valid sample must pass, or the mutations start from nothing worth breaking.
    assert!(gridwatch::workflow::import::parse_feature_collection(
        &samples[0],
        gridwatch::domain::Crs::Wgs84,
        true
    )
    .is_ok());
    let check = |bytes: &[u8], crs| {
        match gridwatch::workflow::import::parse_feature_collection(bytes, crs, true) {
            Ok(features) => {
                // What passes holds only finite coordinates in range.
                for f in &features {
                    for c in geo::CoordsIter::coords_iter(&f.geom) {
                        prop_assert!(
                            c.x.is_finite()
                                && c.y.is_finite()
                                && c.x.abs() <= 180.0
                                && c.y.abs() <= 90.0,
                            "{c:?}"
                        );
                    }
                }
            }
            Err(problems) => {
                prop_assert!(!problems.is_empty());
                for p in &problems {
                    prop_assert!(!p.message.is_empty(), "a problem without a message: {p:?}");
                }
            }
        }
        Ok(())
    };
    let crs = prop::sample::select(vec![
        gridwatch::domain::Crs::Wgs84,
        gridwatch::domain::Crs::Gcj02,
        gridwatch::domain::Crs::Bd09,
    ]);
    fuzz(
        "regions-geojson-bytes",
        (mutated(samples), crs.clone()),
        |(b, crs)| check(&b, crs),
    );
    fuzz(
        "regions-geojson-built",
        (region_collection(), crs),
        |(doc, crs)| check(&serde_json::to_vec(&doc).unwrap(), crs),
    );
}

fn sample_images() -> Vec<Vec<u8>> {
    let mut img = image::GrayImage::from_pixel(48, 36, image::Luma([235]));
    for i in 0..48 {
        img.put_pixel(i, 18, image::Luma([20]));
        img.put_pixel(i * 3 / 4, i * 3 / 4, image::Luma([30]));
    }
    let mut png = Vec::new();
    image::DynamicImage::ImageLuma8(img.clone())
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageLuma8(img)
        .to_rgb8()
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    // The same JPEG with an EXIF block (GPS, orientation, time) after its SOI marker.
    let app1 = gridwatch::media::exif::gps_app1(106.84, 39.66, 6, Some("2026:11:03 08:15:00"));
    let mut exif = jpeg[..2].to_vec();
    exif.extend_from_slice(&app1);
    exif.extend_from_slice(&jpeg[2..]);
    vec![png, jpeg, exif]
}

#[test]
fn fuzz_the_sketch_and_photo_image_decoders() {
    let samples = sample_images();
    for s in &samples {
        assert!(gridwatch::sketch::image_input::decode(s).is_ok());
        assert!(gridwatch::media::normalise(s, None).is_ok());
    }
    fuzz("image-decoders", mutated(samples), |bytes| {
        if let Ok(s) = gridwatch::sketch::image_input::decode(&bytes) {
            prop_assert!(s.width > 0 && s.height > 0);
            prop_assert!(
                u64::from(s.width) * u64::from(s.height)
                    <= gridwatch::sketch::image_input::MAX_PIXELS
            );
        }
        if let Ok(p) = gridwatch::media::normalise(&bytes, Some("image/jpeg")) {
            // What is kept has no metadata: it decodes, and carries no EXIF.
            prop_assert!(gridwatch::media::exif::read(&p.jpeg)
                .and_then(|f| f.gps)
                .is_none());
            prop_assert!(image::load_from_memory(&p.thumbnail).is_ok());
        }
        Ok(())
    });
}

const HOTLINE: &str = "\u{feff}工单编号,受理时间,经度,纬度,诉求类别,诉求内容,坐标系
F-0001,2026-11-03 08:15,106.8415,39.6640,消防通道堵塞,小区消防通道被车辆占用,wgs84
F-0002,2026/11/03 09:40:00,106.8120,39.6731,电动车飞线充电,\"楼道里有人\"\"拉线\"\"，给电动车充电\",gcj02
F-0003,2026-11-04,106.8390,39.6655,油烟,烧烤店油烟直排,bd09
";

const FEATURES: &str = r#"{"type":"FeatureCollection","features":[
{"type":"Feature","id":"G-1","geometry":{"type":"Point","coordinates":[106.8415,39.664]},"properties":{"reported_at":"2026-11-03T08:15:00+08:00","category":"fire_lane_blocked","description":"消防通道"}},
{"type":"Feature","geometry":{"type":"Point","coordinates":[106.812,39.6731]},"properties":{"reported_at":"2026-11-03 09:40","category":"油烟","crs":"gcj02","source":"grid_worker"}}
]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_the_reports_import_through_the_database() {
    use gridwatch::workflow::report_import::{ImportFormat, ImportOptions};
    use gridwatch::workflow::WorkflowError;
    let app = support::demo_app().await;
    let gw = app.gw.clone();
    let handle = tokio::runtime::Handle::current();
    let count = |gw: &gridwatch::workflow::Gridwatch| {
        handle.block_on(async {
            sqlx::query_scalar::<_, i64>("select count(*) from report")
                .fetch_one(gw.db.pool())
                .await
                .unwrap()
        })
    };
    let import = |bytes: &[u8], format| {
        tokio::task::block_in_place(|| {
            let before = count(&gw);
            let result = handle.block_on(gw.import_reports(
                bytes,
                format,
                &ImportOptions::default(),
                |_, _| {},
            ));
            let after = count(&gw);
            match result {
                Ok(o) => {
                    prop_assert_eq!(
                        after - before,
                        o.loaded.inserted as i64,
                        "rows written vs loaded"
                    );
                    prop_assert_eq!(
                        o.rows as u64,
                        o.loaded.inserted + o.loaded.already_loaded + o.rejected.len() as u64,
                        "every row is loaded, already there or rejected"
                    );
                    for r in &o.rejected {
                        prop_assert!(!r.reason.is_empty(), "a rejected row without a reason");
                    }
                    // The reject file is written for whatever was rejected.
                    let _ = gridwatch::workflow::report_import::reject_file(&o, format);
                }
                Err(WorkflowError::Invalid { message, .. }) => {
                    prop_assert!(!message.is_empty());
                    prop_assert_eq!(after, before, "a refused file wrote rows");
                }
                Err(other) => prop_assert!(false, "not a file problem: {other}"),
            }
            Ok(())
        })
    };
    for (sample, format) in [
        (HOTLINE, ImportFormat::Csv),
        (FEATURES, ImportFormat::GeoJson),
    ] {
        let o = handle_import(&gw, sample, format).await;
        assert!(o > 0, "the {format:?} sample loads");
    }
    let csv_rows = prop::collection::vec(
        (
            "[A-Z0-9-]{0,12}",
            prop_oneof![Just("2026-11-03 08:15".to_owned()), "\\PC{0,20}"],
            number_text(),
            number_text(),
            prop::sample::select(vec![
                "油烟",
                "消防通道堵塞",
                "fire_lane_blocked",
                "",
                "广场舞",
            ]),
            "\\PC{0,40}",
            prop::sample::select(vec!["wgs84", "gcj02", "bd09", "", "utm"]),
        ),
        0..20,
    )
    .prop_map(|rows| {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "工单编号",
            "受理时间",
            "经度",
            "纬度",
            "诉求类别",
            "诉求内容",
            "坐标系",
        ])
        .unwrap();
        for (a, b, c, d, e, f, g) in rows {
            w.write_record([a.as_str(), &b, &c, &d, e, &f, g]).unwrap();
        }
        w.into_inner().unwrap()
    });
    fuzz(
        "reports-import-csv-bytes",
        mutated(vec![HOTLINE.as_bytes().to_vec()]),
        |b| import(&b, ImportFormat::Csv),
    );
    fuzz("reports-import-csv-built", csv_rows, |b| {
        import(&b, ImportFormat::Csv)
    });
    fuzz(
        "reports-import-geojson-bytes",
        mutated(vec![FEATURES.as_bytes().to_vec()]),
        |b| import(&b, ImportFormat::GeoJson),
    );
}

async fn handle_import(
    gw: &gridwatch::workflow::Gridwatch,
    sample: &str,
    format: gridwatch::workflow::report_import::ImportFormat,
) -> u64 {
    gw.import_reports(sample.as_bytes(), format, &Default::default(), |_, _| {})
        .await
        .unwrap()
        .loaded
        .inserted
}

#[test]
fn fuzz_the_point_type_and_coordinate_conversions() {
    use gridwatch::domain::{Crs, Wgs84Point};
    let value = prop_oneof![
        3 => -200.0f64..200.0,
        2 => any::<f64>(),
        1 => prop::sample::select(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 180.0, -180.0, 90.0, 90.0 + f64::EPSILON * 128.0, f64::MIN_POSITIVE, 5e-324]),
    ];
    let crs = prop::sample::select(vec![Crs::Wgs84, Crs::Gcj02, Crs::Bd09]);
    fuzz(
        "point-from-crs",
        (value.clone(), value, crs),
        |(lon, lat, crs)| {
            match Wgs84Point::from_crs(lon, lat, crs) {
                Ok(p) => {
                    prop_assert!(
                        lon.is_finite()
                            && lat.is_finite()
                            && lon.abs() <= 180.0
                            && lat.abs() <= 90.0
                    );
                    prop_assert!(p.lon().is_finite() && p.lat().is_finite());
                    prop_assert!(p.lon().abs() <= 180.0 && p.lat().abs() <= 90.0);
                    // Within China a conversion there and back moves a point by millimetres at most
                    // (GCJ-02 has no offset outside its rectangle, so a point that the conversion
                    // moves across the rectangle's edge cannot come back).
                    if crs == Crs::Gcj02
                        && !gridwatch::spatial::crs::out_of_china(lon, lat)
                        && !gridwatch::spatial::crs::out_of_china(p.lon(), p.lat())
                    {
                        let (x, y) = gridwatch::spatial::crs::wgs84_to_gcj02(p.lon(), p.lat());
                        prop_assert!(
                            (x - lon).abs() < 1e-7 && (y - lat).abs() < 1e-7,
                            "{lon},{lat} → {x},{y}"
                        );
                    }
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
            Ok(())
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_the_http_routes_that_take_coordinates() {
    let app = support::demo_app().await;
    app.gw
        .add_api_key(
            "fuzz",
            "fuzz-key",
            gridwatch::access::ClientPurpose::Reports,
        )
        .await
        .unwrap();
    let handle = tokio::runtime::Handle::current();
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let request = prop_oneof![
        (
            number_text(),
            number_text(),
            prop::sample::select(vec!["", "wgs84", "gcj02", "BD-09", "x"])
        )
            .prop_map(move |(x, y, c)| (
                "GET",
                format!(
                    "/api/v1/locate?lon={}&lat={}&crs={}",
                    enc(&x),
                    enc(&y),
                    enc(c)
                ),
                String::new()
            )),
        (number_text(), number_text(), number_text(), number_text()).prop_map(
            move |(a, b, c, d)| (
                "GET",
                format!("/api/v1/reports?bbox={}", enc(&format!("{a},{b},{c},{d}"))),
                String::new()
            )
        ),
        (number_text(), number_text(), number_text()).prop_map(|(z, x, y)| (
            "GET",
            format!("/tiles/incidents/{}/{}/{}.mvt", enc(&z), enc(&x), enc(&y)),
            String::new()
        )),
        (
            number_text(),
            number_text(),
            prop::sample::select(vec!["fire_lane_blocked", "oil_smoke", "x"])
        )
            .prop_map(move |(x, y, c)| (
                "POST",
                "/open311/v2/requests.json".to_owned(),
                format!(
                    "api_key=fuzz-key&service_code={c}&lat={}&long={}&description=fuzz",
                    enc(&y),
                    enc(&x)
                )
            )),
        (number_text(), number_text()).prop_map(|(x, y)| (
            "POST",
            "/api/v1/reports".to_owned(),
            format!(
                "{{\"category\":\"oil_smoke\",\"lon\":{x},\"lat\":{y},\"source\":\"grid_worker\"}}"
            )
        )),
    ];
    fuzz("http-coordinates", request, |(method, uri, body)| {
        tokio::task::block_in_place(|| {
            let content_type = if uri.starts_with("/open311") {
                "application/x-www-form-urlencoded"
            } else {
                "application/json"
            };
            let (status, _, answer) =
                handle.block_on(app.raw(method, &uri, content_type, body.into_bytes()));
            prop_assert!(
                status.as_u16() < 500,
                "{method} {uri}: {status} {}",
                String::from_utf8_lossy(&answer)
            );
            Ok(())
        })
    });
}
