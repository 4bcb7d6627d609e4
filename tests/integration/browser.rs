//! The web pages in a real headless Chromium (Debian's package), driven by playwright-core:
//! tests/browser/map.mjs loads `/`, waits for the map, checks that grids and the heatmap
//! rendered, clicks a grid, switches language, filters; tests/browser/editor.mjs digitises a
//! sample sketch, reviews, edits, publishes it, splits a grid into micro-grids and locates a point
//! in one; tests/browser/dispatch.mjs runs the whistle loop in the dispatcher's console on a
//! controllable clock (with a delivery receipt from the SMS gateway); tests/browser/report.mjs files reports from the snap-and-report page on a
//! phone-sized screen, online and offline; tests/browser/dashboard.mjs checks a street leader's
//! dashboard against the API; tests/browser/api-docs.mjs browses the OpenAPI document
//! in Swagger UI and tries one call; tests/browser/access.mjs logs in as a street leader and sees
//! only their street. Screenshots go to target/screenshots.

use crate::support::{fresh_db, repo_dir, url_of, Child};
use std::process::Command;

/// Runs one browser script against a fresh `gridwatch serve --demo` with `extra` arguments.
async fn run_script(script: &str, extra: &[&str]) {
    run_script_with(script, extra, |_| Vec::new()).await
}

/// [`run_script`], with environment variables for the script that `prepare` makes from the
/// database URL once the server has started (keys made with the CLI, say).
async fn run_script_with(
    script: &str,
    extra: &[&str],
    prepare: impl FnOnce(&str) -> Vec<(String, String)>,
) {
    let tests = repo_dir().join("tests");
    assert!(
        tests.join("node_modules/playwright-core").exists(),
        "tests/node_modules/playwright-core is missing: run scripts/setup"
    );
    let (_db, options) = fresh_db().await;
    let url = url_of(&options);
    let mut args = vec!["--listen", "127.0.0.1:0", "--demo"];
    args.extend_from_slice(extra);
    let server = Child::serve(&args, &[("DATABASE_URL", &url)]);
    let envs = prepare(&url);
    let shots = repo_dir().join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let base = server.base.clone();
    let script = tests.join(script);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .envs(envs)
            .arg(&script)
            .arg(&base)
            .arg(&shots)
            .current_dir(&tests)
            .output()
            .expect("node must be installed (scripts/setup)")
    })
    .await
    .unwrap();
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "browser checks failed");
    assert!(server.terminate().success());
}

/// The planner's editor: upload a sample sketch, set control points (one pair by clicks), see the
/// fit and the overlay, vectorise (18 candidates), accept the review, publish new versions, split
/// a grid by a drawn line into micro-grids, publish, and `locate` answers with a new micro-grid.
#[tokio::test]
async fn editor_page_digitises_a_sample_sketch() {
    run_script("browser/editor.mjs", &[]).await;
}

#[tokio::test]
async fn map_page_renders_grids_and_heatmap() {
    assert!(
        repo_dir()
            .join("web/node_modules/maplibre-gl/package.json")
            .exists(),
        "web/node_modules/maplibre-gl is missing: run scripts/setup"
    );
    run_script("browser/map.mjs", &[]).await;
}

/// The dispatcher's console: a report arrives without a reload, is accepted and whistled, the
/// clock passes an hour and a yellow card shows, the departments answer, it is resolved, closed
/// and rated; figures, CSV, rules, English and a phone-sized screen.
#[tokio::test]
async fn dispatch_console_runs_the_whistle_loop() {
    run_script_with("browser/dispatch.mjs", &["--controllable-clock"], |url| {
        // The SMS gateway's key, as an operator makes it.
        let out = crate::support::gridwatch_cli_blocking(
            &["apikey", "create", "短信网关", "--purpose", "sms-gateway"],
            url,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        vec![("GRIDWATCH_TEST_SMS_KEY".to_owned(), key)]
    })
    .await;
}

/// The snap-and-report page on a phone-sized screen: geolocation and the grid and party branch
/// it goes to, a photo whose EXIF location moves the report (and is stripped on the server),
/// filing, the offline queue draining once, a lost answer retried under the same key, refusals
/// shown, English, and the page opening offline from its service worker.
#[tokio::test]
async fn report_page_files_from_a_phone_and_queues_offline() {
    run_script("browser/report.mjs", &[]).await;
}

/// The street leader's dashboard: one street's headline figures, categories, trend, top grids,
/// hot spots and rising grids equal the API's; a community; filters; the CSV, GeoJSON and PNG
/// exports; the print view, English, a phone-sized screen, an empty period and an error.
#[tokio::test]
async fn dashboard_page_shows_one_streets_figures() {
    run_script("browser/dashboard.mjs", &[]).await;
}

/// The API reference: Swagger UI renders /api/openapi.json, and "Try it out" reaches the server.
#[tokio::test]
async fn api_docs_page_browses_the_openapi_document() {
    run_script("browser/api-docs.mjs", &[]).await;
}

/// Log-in and region scope: the street leader of 新华街道 logs in on the page and sees only their
/// street in the console and on the dashboard; another street's case is 404; logging out.
#[tokio::test]
async fn street_leader_logs_in_and_sees_only_their_street() {
    run_script("browser/access.mjs", &[]).await;
}
