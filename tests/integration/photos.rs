//! Report photos against a real database and a real photo folder: upload, EXIF location read and
//! stripped, thumbnails, deduplication, refusals (type, size, decompression bombs, an unwritable
//! folder), photos and reporter details on a report, privacy in the public views, Open311 media
//! upload, and the sweep of uploads no report took.

use crate::support::{demo_app_with, tmp_dir, SmallDisk, TestApp};
use axum::http::StatusCode;
use gridwatch::access::ClientPurpose;
use gridwatch::media::exif;
use gridwatch::workflow::clock::Clock;
use gridwatch::workflow::Gridwatch;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Inside 盛世社区第15网格 and inside another grid of the demo (WGS-84).
const IN_GRID: (f64, f64) = (106.84, 39.672);

fn photo_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = tmp_dir().join(format!(
        "photos-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn app_with_photos(dir: PathBuf) -> TestApp {
    demo_app_with(move |gw: Gridwatch| gw.with_photo_dir(dir).with_clock(Clock::controllable()))
        .await
}

/// A real JPEG of `w`×`h` with a GPS position in its EXIF.
fn gps_jpeg(w: u32, h: u32, lon: f64, lat: f64) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 7 % 256) as u8, (y * 3 % 256) as u8, 120])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    exif::with_app1(
        &out.into_inner(),
        &exif::gps_app1(lon, lat, 1, Some("2026:11:30 09:15:00")),
    )
}

/// A well-formed PNG header (signature, IHDR, a tiny IDAT, IEND) declaring `w`×`h` pixels.
fn bomb_png(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        let mut body = kind.to_vec();
        body.extend(data);
        c.extend(&body);
        c.extend(crc32(&body).to_be_bytes());
        c
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}

async fn upload(app: &TestApp, ct: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let (status, _, body) = app.raw("POST", "/api/v1/photos", ct, bytes).await;
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn a_photo_is_checked_located_stripped_and_thumbnailed() {
    let dir = photo_dir();
    let app = app_with_photos(dir.clone()).await;
    let upload_bytes = gps_jpeg(1200, 900, IN_GRID.0, IN_GRID.1);
    assert!(exif::has_app1(&upload_bytes));
    let (status, photo) = upload(&app, "image/jpeg", upload_bytes.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{photo}");
    let id = photo["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert!((photo["exif_gps"]["lon"].as_f64().unwrap() - IN_GRID.0).abs() < 1e-6);
    assert!((photo["exif_gps"]["lat"].as_f64().unwrap() - IN_GRID.1).abs() < 1e-6);
    assert_eq!(photo["taken_at"], "2026-11-30T01:15:00Z");
    assert_eq!(
        (photo["width"].as_i64(), photo["height"].as_i64()),
        (Some(1200), Some(900))
    );

    // The stored copy: a JPEG with no EXIF left, in the photo folder.
    let (status, ct, stored) = app
        .raw("GET", photo["url"].as_str().unwrap(), "", vec![])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct, "image/jpeg");
    assert!(!exif::has_app1(&stored), "EXIF must be stripped");
    assert_eq!(exif::read(&stored), None);
    assert!(!stored.windows(4).any(|w| w == b"Exif"));
    let on_disk = std::fs::read(dir.join(&id[..2]).join(format!("{id}.jpg"))).unwrap();
    assert_eq!(on_disk, stored);
    let decoded = image::load_from_memory(&stored).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (1200, 900));
    let (status, _, thumb) = app
        .raw("GET", photo["thumbnail_url"].as_str().unwrap(), "", vec![])
        .await;
    assert_eq!(status, StatusCode::OK);
    let thumb = image::load_from_memory(&thumb).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (320, 240));

    // The same bytes again: the same photo, nothing new written.
    let (status, again) = upload(&app, "image/jpeg", upload_bytes).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], id.as_str());
    assert_eq!(app.scalar_i64("select count(*) from photo").await, 1);

    // Unknown and malformed ids are 404s.
    let (status, _) = app
        .get("/api/v1/photos/0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get("/api/v1/photos/..%2f..%2fetc").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_anonymous_uploader_reads_their_photo_back_with_its_key_and_nobody_else_does() {
    let app = app_with_photos(photo_dir()).await;
    let resident = app.as_caller(None);
    let bytes = gps_jpeg(640, 480, IN_GRID.0, IN_GRID.1);
    let (status, photo) = upload(&resident, "image/jpeg", bytes.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{photo}");
    let id = photo["id"].as_str().unwrap().to_owned();
    let thumb_url = photo["thumbnail_url"].as_str().unwrap().to_owned();
    let key = thumb_url
        .split_once("?key=")
        .map(|(_, k)| k.to_owned())
        .expect("the uploader's thumbnail URL carries its key");
    assert_eq!(key.len(), 32);
    assert_eq!(photo["url"], format!("/api/v1/photos/{id}?key={key}"));

    // With the key, no log-in is needed, for the thumbnail and the photo.
    for url in [thumb_url.as_str(), photo["url"].as_str().unwrap()] {
        let (status, ct, bytes) = resident.raw("GET", url, "", vec![]).await;
        assert_eq!(
            (status, ct.as_str()),
            (StatusCode::OK, "image/jpeg"),
            "{url}"
        );
        assert!(image::load_from_memory(&bytes).is_ok());
    }
    // Without it, or with a wrong one, or with another photo's, the rule for photos applies.
    let (other_status, other) = upload(
        &resident,
        "image/jpeg",
        gps_jpeg(320, 240, IN_GRID.0, IN_GRID.1),
    )
    .await;
    assert_eq!(other_status, StatusCode::CREATED);
    let other_key = other["url"]
        .as_str()
        .unwrap()
        .split_once("?key=")
        .unwrap()
        .1
        .to_owned();
    assert_ne!(other_key, key);
    let mut wrong = key.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).unwrap();
    for query in [
        String::new(),
        format!("?key={wrong}"),
        format!("?key={other_key}"),
        "?key=".into(),
    ] {
        let url = format!("/api/v1/photos/{id}/thumbnail{query}");
        let (status, _, _) = resident.raw("GET", &url, "", vec![]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{url}");
    }
    // The same bytes uploaded again answer with the same key; staff need none.
    let (_, again) = upload(&resident, "image/jpeg", bytes).await;
    assert_eq!(again["thumbnail_url"], thumb_url.as_str());
    let (status, _, _) = app
        .raw("GET", &format!("/api/v1/photos/{id}/thumbnail"), "", vec![])
        .await;
    assert_eq!(status, StatusCode::OK);
    // The key comes from a secret the database keeps, so every process on it agrees.
    let secret: String =
        sqlx::query_scalar("select value from meta where key = 'photo_key_secret'")
            .fetch_one(app.gw.db.pool())
            .await
            .unwrap();
    assert_eq!(gridwatch::access::password::photo_key(&secret, &id), key);
}

#[tokio::test]
async fn bad_uploads_are_refused_with_their_reason_and_nothing_is_kept() {
    let dir = photo_dir();
    let app = app_with_photos(dir.clone()).await;
    let (status, body) = upload(&app, "image/jpeg", b"this is a text file".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not an image"));
    let (status, body) = upload(&app, "application/pdf", gps_jpeg(10, 10, 106.8, 39.6)).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");

    // A PNG of a few bytes that would decode to 30000 × 30000 pixels: refused before decoding.
    let bomb = bomb_png(30_000, 30_000);
    let (status, body) = upload(&app, "image/png", bomb).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "photo");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("30000×30000"),
        "{body}"
    );

    // Over 12 MiB.
    let (status, body) = upload(&app, "image/jpeg", vec![0xFF; 12 * 1024 * 1024 + 10]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("12 MiB"));

    // A truncated JPEG.
    let mut cut = gps_jpeg(400, 300, 106.8, 39.6);
    cut.truncate(cut.len() / 2);
    let (status, body) = upload(&app, "image/jpeg", cut).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    assert_eq!(app.scalar_i64("select count(*) from photo").await, 0);
    assert!(!dir.exists() || std::fs::read_dir(&dir).unwrap().next().is_none());
}

#[tokio::test]
async fn an_unwritable_photo_folder_is_a_503_and_nothing_is_recorded() {
    // Root may write anywhere, so the folder is made impossible: a path below a plain file.
    let blocker = photo_dir();
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, b"a file, not a folder").unwrap();
    let app = app_with_photos(blocker.join("photos")).await;
    let (status, body) = upload(&app, "image/jpeg", gps_jpeg(64, 48, 106.8, 39.6)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("could not be saved"));
    assert_eq!(app.scalar_i64("select count(*) from photo").await, 0);
    std::fs::remove_file(&blocker).unwrap();
}

#[tokio::test]
async fn a_report_takes_its_photos_and_keeps_its_reporter_private() {
    let app = app_with_photos(photo_dir()).await;
    let (_, a) = upload(&app, "image/jpeg", gps_jpeg(300, 200, IN_GRID.0, IN_GRID.1)).await;
    let (_, b) = upload(&app, "image/jpeg", gps_jpeg(200, 300, IN_GRID.0, IN_GRID.1)).await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let before = app.scalar_i64("select count(*) from report").await;

    // Refusals name the field; nothing is written.
    for (photos, field) in [
        (json!(["nope"]), "photos[0]"),
        (json!([a, a]), "photos[1]"),
        (json!(["0123456789abcdef0123456789abcdef"]), "photos"),
        (json!([a, b, a, b, a]), "photos"),
    ] {
        let (status, body) = app
            .post(
                "/api/v1/reports",
                &json!({"category": "fire_lane_blocked", "lon": IN_GRID.0, "lat": IN_GRID.1,
                        "source": "resident", "photos": photos}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let (status, body) = app
        .post(
            "/api/v1/reports",
            &json!({"category": "fire_lane_blocked", "lon": IN_GRID.0, "lat": IN_GRID.1,
                    "source": "resident", "reporter": {"phone": "call me maybe"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "reporter.phone");
    assert_eq!(app.scalar_i64("select count(*) from report").await, before);

    let (status, filed) = app
        .post(
            "/api/v1/reports",
            &json!({"category": "fire_lane_blocked", "lon": IN_GRID.0, "lat": IN_GRID.1,
                    "source": "resident", "description": "消防通道被三轮车堵住",
                    "photos": [a, b], "reporter": {"name": " 王女士 ", "phone": "139 0473 1234"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{filed}");
    assert_eq!(filed["photos"], json!([a, b]));
    let case_id = filed["case_id"].as_i64().unwrap();
    let report_id = filed["id"].as_i64().unwrap();

    // The dispatcher's case detail shows the photos and the reporter.
    let (status, case) = app.get(&format!("/api/v1/cases/{case_id}")).await;
    assert_eq!(status, StatusCode::OK);
    let photos = case["report_photos"].as_array().unwrap();
    assert_eq!(photos.len(), 2);
    assert_eq!(photos[0]["id"], a);
    assert_eq!(photos[1]["id"], b);
    assert_eq!(
        case["reporter"],
        json!({"name": "王女士", "phone": "139 0473 1234"})
    );

    // A photo belongs to one report only.
    let (status, body) = app
        .post(
            "/api/v1/reports",
            &json!({"category": "fire_lane_blocked", "lon": IN_GRID.0, "lat": IN_GRID.1,
                    "source": "resident", "photos": [b]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&format!("report #{report_id}")));

    // Reports lists and Open311's public view never carry the reporter.
    let (_, report) = app.get(&format!("/api/v1/reports/{report_id}")).await;
    let (_, list) = app.get("/api/v1/reports?limit=1000").await;
    let (_, _, public) = app
        .raw(
            "GET",
            &format!("/open311/v2/requests/{report_id}.json"),
            "",
            vec![],
        )
        .await;
    for text in [
        report.to_string(),
        list.to_string(),
        String::from_utf8_lossy(&public).into_owned(),
    ] {
        assert!(!text.contains("王女士") && !text.contains("1234"), "{text}");
    }
}

#[tokio::test]
async fn open311_takes_a_photo_as_a_multipart_media_upload() {
    let app = app_with_photos(photo_dir()).await;
    app.gw
        .add_api_key("test client", "k-test", ClientPurpose::Reports)
        .await
        .unwrap();
    let jpeg = gps_jpeg(320, 240, IN_GRID.0, IN_GRID.1);
    let (content_type, body) = open311_media_request("k-test", &jpeg);
    let (status, _, answer) = app
        .raw("POST", "/open311/v2/requests.json", &content_type, body)
        .await;
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let id = answer[0]["service_request_id"].as_str().unwrap().to_owned();
    let (_, _, request) = app
        .raw(
            "GET",
            &format!("/open311/v2/requests/{id}.json"),
            "",
            vec![],
        )
        .await;
    let request: Value = serde_json::from_slice(&request).unwrap();
    let media_url = request[0]["media_url"].as_str().unwrap();
    let path = media_url
        .split_once("/api/v1/photos/")
        .map(|(_, id)| format!("/api/v1/photos/{id}"))
        .unwrap_or_else(|| panic!("media_url {media_url} is not a photo URL"));
    let (status, ct, stored) = app.raw("GET", &path, "", vec![]).await;
    assert_eq!((status, ct.as_str()), (StatusCode::OK, "image/jpeg"));
    assert!(!exif::has_app1(&stored));
    assert!(!request.to_string().contains("13912345678"));
    assert_eq!(
        app.scalar_i64(&format!(
            "select count(*) from report_photo where report_id = {id}"
        ))
        .await,
        1
    );

    // A text file as media is refused in Open311's error format, and nothing is filed.
    let before = app.scalar_i64("select count(*) from report").await;
    let (content_type, body) = open311_media_request("k-test", b"not a photo");
    let (status, _, answer) = app
        .raw("POST", "/open311/v2/requests.json", &content_type, body)
        .await;
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{answer}");
    assert_eq!(answer[0]["code"], 415);
    assert_eq!(app.scalar_i64("select count(*) from report").await, before);
}

#[tokio::test]
async fn uploads_no_report_took_are_swept_with_their_files() {
    let dir = photo_dir();
    let app = app_with_photos(dir.clone()).await;
    let (_, kept) = upload(&app, "image/jpeg", gps_jpeg(64, 48, IN_GRID.0, IN_GRID.1)).await;
    let (_, lost) = upload(&app, "image/jpeg", gps_jpeg(48, 64, IN_GRID.0, IN_GRID.1)).await;
    let (kept, lost) = (kept["id"].as_str().unwrap(), lost["id"].as_str().unwrap());
    let (status, _) = app
        .post(
            "/api/v1/reports",
            &json!({"category": "oil_smoke", "lon": IN_GRID.0, "lat": IN_GRID.1,
                    "source": "rider", "photos": [kept]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        app.gw.sweep_photos().await.unwrap(),
        0,
        "nothing is old yet"
    );
    app.gw.clock.advance(chrono::Duration::hours(73)).unwrap();
    assert_eq!(app.gw.sweep_photos().await.unwrap(), 1);
    let (status, _) = app.get(&format!("/api/v1/photos/{lost}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!dir.join(&lost[..2]).join(format!("{lost}.jpg")).exists());
    assert!(dir.join(&kept[..2]).join(format!("{kept}.jpg")).exists());
}

/// An Open311 `POST requests` as a multipart form with `jpeg` as its media: content type, body.
fn open311_media_request(api_key: &str, jpeg: &[u8]) -> (String, Vec<u8>) {
    let boundary = "gw-boundary-7d3";
    let mut body = Vec::new();
    for (k, v) in [
        ("api_key", api_key),
        ("service_code", "fire_lane_blocked"),
        ("lat", "39.672"),
        ("long", "106.84"),
        ("description", "楼下消防通道堵了"),
        ("attribute[obstruction]", "ebike"),
        ("phone", "13912345678"),
    ] {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"media\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n")
            .as_bytes(),
    );
    body.extend(jpeg);
    body.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn a_full_disk_is_a_clear_503_and_neither_the_photo_nor_its_report_is_kept() {
    if !nix::unistd::geteuid().is_root() {
        // The suite runs as root, like its set-up; a user without root cannot mount a disk.
        eprintln!("skipped: mounting a small file system needs root");
        return;
    }
    let dir = photo_dir();
    let disk = SmallDisk::mount(dir.clone(), "256k");
    let filler = disk.fill();
    let app = app_with_photos(dir.clone()).await;
    app.gw
        .add_api_key("test client", "k-full", ClientPurpose::Reports)
        .await
        .unwrap();
    let jpeg = gps_jpeg(320, 240, IN_GRID.0, IN_GRID.1);

    // The upload says what went wrong and when to come back, and keeps nothing.
    let (status, _, body) = app
        .raw("POST", "/api/v1/photos", "image/jpeg", jpeg.clone())
        .await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("could not be saved") && message.contains("No space left on device"),
        "{message}"
    );
    // An Open311 request whose photo cannot be stored is not acknowledged, and not filed.
    let (content_type, form) = open311_media_request("k-full", &jpeg);
    let (status, _, answer) = app
        .raw("POST", "/open311/v2/requests.json", &content_type, form)
        .await;
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer[0]["code"], 503, "{answer}");
    assert_eq!(app.scalar_i64("select count(*) from photo").await, 0);
    assert_eq!(app.scalar_i64("select count(*) from report").await, 0);
    // No partial file is left behind: the disk holds the filler and empty folders only.
    let mut files = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    assert_eq!(files, vec![filler.clone()]);

    // Space again: the same upload and request go through, with nothing done twice.
    std::fs::remove_file(&filler).unwrap();
    let (status, body) = upload(&app, "image/jpeg", jpeg.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (content_type, form) = open311_media_request("k-full", &jpeg);
    let (status, _, answer) = app
        .raw("POST", "/open311/v2/requests.json", &content_type, form)
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(app.scalar_i64("select count(*) from photo").await, 1);
    assert_eq!(app.scalar_i64("select count(*) from report").await, 1);
    drop(disk);
}
