//! Backup and restore with `gridwatch db backup` / `db restore` (PostgreSQL's own pg_dump and
//! pg_restore): the demo database restored into a fresh one gives the same answers; a restore
//! into a database that holds data, or from a damaged file, changes nothing.

use crate::support::{empty_db, gridwatch_cli as cli, spawn_app, tmp_dir, url_of, TestApp};
use axum::http::StatusCode;
use gridwatch::http::{app, AppState, HttpConfig};
use gridwatch::workflow::Gridwatch;
use serde_json::Value;
use sqlx::ConnectOptions;

/// The answers a dispatcher, a leader and a resident would read.
async fn answers(app: &TestApp) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for uri in [
        "/api/v1/regions",
        "/api/v1/cases?limit=200",
        "/api/v1/reports?limit=200",
        "/api/v1/dashboard?region=150302001",
        "/api/v1/dispatch/stats",
        "/api/v1/locate?lon=106.8405&lat=39.672",
        "/api/v1/hotspots?category=flying_lead_charging",
        "/api/v1/audit?limit=100",
        "/api/v1/users",
        "/api/v1/cases/20000",
        "/api/v1/cases/20000/notices",
    ] {
        let (status, body) = app.get(uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        out.push((uri.to_owned(), body));
    }
    out
}

#[tokio::test]
async fn a_restored_backup_gives_the_same_answers_and_a_bad_restore_changes_nothing() {
    let original = spawn_app().await;
    let loaded = gridwatch::demo::load(&original.gw).await.unwrap();
    assert!(loaded.incidents_loaded > 10_000, "{loaded:?}");
    // A case read with its reporter leaves an audit line, which the backup must keep too.
    let (status, _) = original.get("/api/v1/cases/20000").await;
    assert_eq!(status, StatusCode::OK);
    let before = answers(&original).await;
    let source = url_of(&original.gw.db.options());

    let file = tmp_dir().join(format!("backup-{}.dump", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let out = cli(&["db", "backup", file.to_str().unwrap()], &source).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.contains("765 regions"), "{said}");
    assert!(std::fs::metadata(&file).unwrap().len() > 100_000);
    assert!(!file.with_extension("partial").exists());

    // Into a fresh database: the same answers, through the same token (accounts came along).
    let target = empty_db("restored").await;
    let out = cli(&["db", "restore", file.to_str().unwrap()], &url_of(&target)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("{} reports", loaded.incidents_loaded)),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let db = gridwatch::storage::Db::connect(target.clone())
        .await
        .unwrap();
    let gw = Gridwatch::open(db, 50.0).await.unwrap();
    let restored = TestApp {
        router: app(AppState::new(
            gw.clone(),
            HttpConfig {
                web_dir: crate::support::repo_dir().join("web"),
                basemap_style_url: None,
                secure_cookies: false,
            },
        )),
        gw,
        token: original.token.clone(),
    };
    let after = answers(&restored).await;
    for ((uri, a), (_, b)) in before.iter().zip(&after) {
        // The audit log grew by the reads made to compare; the rest is equal.
        if uri.starts_with("/api/v1/audit") {
            let known: Vec<&Value> = a.as_array().unwrap().iter().collect();
            assert!(
                known.iter().all(|e| b.as_array().unwrap().contains(e)),
                "an audit line was lost"
            );
            continue;
        }
        assert_eq!(a, b, "{uri} differs after the restore");
    }
    // The uploader-key secret came along: keys handed out before still open their photos.
    assert_eq!(
        original.gw.photo_key("0123456789abcdef0123456789abcdef"),
        restored.gw.photo_key("0123456789abcdef0123456789abcdef")
    );

    // A second restore into a database with data is refused, and changes nothing.
    let reports = restored.scalar_i64("select count(*) from report").await;
    let out = cli(&["db", "restore", file.to_str().unwrap()], &url_of(&target)).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already holds gridwatch data"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        restored.scalar_i64("select count(*) from report").await,
        reports
    );

    // A damaged backup (cut short) restores nothing at all.
    let bytes = std::fs::read(&file).unwrap();
    let cut = tmp_dir().join(format!("backup-{}-cut.dump", std::process::id()));
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let damaged = empty_db("damaged").await;
    let out = cli(&["db", "restore", cut.to_str().unwrap()], &url_of(&damaged)).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing was restored")
            || String::from_utf8_lossy(&out.stderr).contains("the database is as it was"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut conn = damaged.connect().await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "select count(*) from pg_tables where schemaname = 'public' and tablename <> 'spatial_ref_sys'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(tables, 0, "a failed restore left tables behind");
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&cut);
}
