//! The command-line contract: `serve` with the embedded cluster (create, restart, recover
//! after kill -9, stop on SIGTERM) and `regions import`.

use crate::support::{fresh_db, gridwatch_cli, tmp_dir, url_of, Child};
use std::path::Path;
use std::process::Command;

fn postmaster_running(data_dir: &Path) -> bool {
    let pid_file = data_dir.join("postgres/postmaster.pid");
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return false;
    };
    let pid = text.lines().next().unwrap_or("").trim().to_owned();
    Path::new(&format!("/proc/{pid}")).exists()
}

async fn health(base: &str) -> u16 {
    reqwest::get(format!("{base}/healthz"))
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn embedded_cluster_lifecycle() {
    let data_dir = tmp_dir().join(format!("cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let dir = data_dir.to_str().unwrap();
    let args = ["--listen", "127.0.0.1:0", "--data-dir", dir];

    // First start creates the cluster; data written survives a restart.
    let first = Child::serve(&args, &[]);
    assert_eq!(health(&first.base).await, 200);
    let admin = first.first_admin_client().await;
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{}/api/v1/reports", first.base))
        .json(&serde_json::json!({"category": "road_hazard", "lon": 106.8, "lat": 39.6, "source": "hotline"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(postmaster_running(&data_dir));
    let status = first.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        !postmaster_running(&data_dir),
        "SIGTERM must stop the cluster"
    );

    // kill -9 leaves PostgreSQL behind; the next start recovers it.
    let mut second = Child::serve(&args, &[]);
    second.child.kill().unwrap();
    second.child.wait().unwrap();
    assert!(
        postmaster_running(&data_dir),
        "the cluster outlives a killed gridwatch"
    );
    let third = Child::serve(&args, &[]);
    assert_eq!(health(&third.base).await, 200);
    let page: serde_json::Value = admin
        .get(format!("{}/api/v1/reports", third.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["reports"].as_array().unwrap().len(),
        1,
        "data survives restarts"
    );
    assert!(third.terminate().success());
    assert!(!postmaster_running(&data_dir));
    drop(second);
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test]
async fn regions_import_command() {
    let (_db, options) = fresh_db().await;
    let url = url_of(&options);
    let dir = tmp_dir().join(format!("import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.geojson");
    std::fs::write(
        &good,
        r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"code":"150302","name":"海勃湾区","level":"district"},
            "geometry":{"type":"Polygon","coordinates":[[[106.7,39.5],[106.9,39.5],[106.9,39.7],[106.7,39.7],[106.7,39.5]]]}}]}"#,
    )
    .unwrap();
    let bad = dir.join("bad.geojson");
    std::fs::write(
        &bad,
        r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"code":"150302001","name":"新华街道","level":"street","parent_code":"150399"},
            "geometry":{"type":"Polygon","coordinates":[[[106.7,39.5],[106.9,39.5],[106.9,39.7],[106.7,39.5]]]}}]}"#,
    )
    .unwrap();
    let run = |file: &Path| {
        Command::new(env!("CARGO_BIN_EXE_gridwatch"))
            .args(["regions", "import"])
            .arg(file)
            .env("DATABASE_URL", &url)
            .output()
            .unwrap()
    };
    let out = run(&good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 created"));
    let out = run(&bad);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("feature 0") && stderr.contains("parent_code"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was written"), "{stderr}");
}

/// `gridwatch bench dispatch` on small sizes: it prints both sides of each comparison, and the
/// scheduler fired every deadline exactly once.
#[tokio::test]
async fn dispatch_benchmark_prints_figures_and_fires_each_deadline_once() {
    let (_db, options) = fresh_db().await;
    let url = url_of(&options);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_gridwatch"))
            .args([
                "bench",
                "dispatch",
                "--reports",
                "300",
                "--clients",
                "4",
                "--deadlines",
                "400",
                "--window-s",
                "2",
            ])
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_prints(
        &out,
        &[
            "peer: report only",
            "report + routing + case + event + notice",
            "fired 400 of 400; escalation events 400 (each step once: yes); left 0",
            "peer: a timer task per deadline",
        ],
    );
}

/// A command that succeeded and printed each of `expected`.
fn assert_prints(out: &std::process::Output, expected: &[&str]) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for e in expected {
        assert!(stdout.contains(e), "missing {e:?} in:\n{stdout}");
    }
}

/// `gridwatch bench scale` on two small cities: both sides are measured, and the index and
/// PostGIS give every queried point the same grid.
#[tokio::test]
async fn scale_benchmark_prints_its_curve_and_agrees_with_postgis() {
    let (_db, options) = fresh_db().await;
    let out = gridwatch_cli(
        &[
            "bench",
            "scale",
            "--grids",
            "200,3000",
            "--points",
            "20000",
            "--queries",
            "300",
        ],
        &url_of(&options),
    )
    .await;
    assert_prints(
        &out,
        &[
            "      210 grids (216 regions)",
            "     3025 grids (",
            "300 of 300 points agree",
            "| 3025 |",
            "disagreements between the index and PostGIS: 0",
        ],
    );
}

/// `gridwatch bench import` on 2,000 rows: gridwatch's part alone, the whole import and the bare
/// COPY are each measured, and the two loads agree on what they loaded.
#[tokio::test]
async fn import_benchmark_prints_its_three_figures() {
    let (_db, options) = fresh_db().await;
    let out = gridwatch_cli(&["bench", "import", "--rows", "2000"], &url_of(&options)).await;
    assert_prints(
        &out,
        &[
            "import benchmark: 2000 hotline rows",
            "(parse, check, assign to grids, COPY rows; --check):",
            "rows/s (2 rejected)",
            "(1998 loaded, ",
            "2 rejected)",
            "rows/s (1998 loaded)",
            "ratio: the whole import",
        ],
    );
}

/// `gridwatch apikey create` prints a new key once and stores only its hash, which then opens
/// Open311 filing; `apikey list` shows it (not the key) and `apikey revoke` shuts it at once.
#[tokio::test]
async fn apikey_create_prints_a_key_and_stores_its_hash() {
    let (db, options) = fresh_db().await;
    let url = url_of(&options);
    let out = gridwatch_cli(&["apikey", "create", "12345 hotline"], &url).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        key.len() == 40 && key.bytes().all(|b| b.is_ascii_hexdigit()),
        "{key:?}"
    );
    let stored: Vec<(String, String)> = sqlx::query_as("select name, key_sha256 from api_client")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, "12345 hotline");
    assert_eq!(stored[0].1, gridwatch::access::password::sha256_hex(&key));
    assert!(!stored[0].1.contains(&key));

    let listed = gridwatch_cli(&["apikey", "list"], &url).await;
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains("12345 hotline") && !listed.contains(&key),
        "{listed}"
    );

    // The key files through Open311 until it is revoked, then it is refused.
    let server = Child::serve(&["--listen", "127.0.0.1:0"], &[("DATABASE_URL", &url)]);
    let file = |key: String| {
        let base = server.base.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/open311/v2/requests.json"))
                .form(&[
                    ("api_key", key.as_str()),
                    ("service_code", "road_hazard"),
                    ("lat", "39.66"),
                    ("long", "106.82"),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_ne!(file(key.clone()).await, 403, "a live key is accepted");
    let revoked = gridwatch_cli(&["apikey", "revoke", "12345 hotline"], &url).await;
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    assert_eq!(file(key.clone()).await, 403, "a revoked key is refused");
    let again = gridwatch_cli(&["apikey", "revoke", "12345 hotline"], &url).await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no live API key"));
    let listed = gridwatch_cli(&["apikey", "list"], &url).await;
    let line = String::from_utf8(listed.stdout).unwrap();
    let line = line
        .lines()
        .find(|l| l.contains("12345 hotline"))
        .unwrap()
        .to_owned();
    assert!(
        line.trim_end().ends_with(|c: char| c.is_ascii_digit()),
        "revoked at shown: {line}"
    );

    // A key for the SMS gateway posts receipts and files nothing.
    let out = gridwatch_cli(
        &["apikey", "create", "短信网关", "--purpose", "sms-gateway"],
        &url,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gateway = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let listed = String::from_utf8(gridwatch_cli(&["apikey", "list"], &url).await.stdout).unwrap();
    assert!(
        listed
            .lines()
            .any(|l| l.contains("短信网关") && l.contains("sms_gateway")),
        "{listed}"
    );
    let receipt = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/notices/no-such-notice/receipt",
            server.base
        ))
        .bearer_auth(&gateway)
        .json(&serde_json::json!({"status": "delivered"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        receipt.status().as_u16(),
        404,
        "admitted, and no such notice"
    );
    assert_eq!(
        file(gateway).await,
        403,
        "a gateway key files no Open311 request"
    );
    let bad = gridwatch_cli(&["apikey", "create", "x", "--purpose", "sms"], &url).await;
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--purpose is reports or sms-gateway"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(server.terminate().success());
}

/// A running server remembers who a token stands for (`access::credentials`), yet
/// `gridwatch users disable` in another process locks the user out of it at once: the database
/// tells the server (migration 0015), well before the entries' 10 s lifetime would.
#[tokio::test]
async fn users_disable_in_another_process_locks_a_cached_token_out_of_a_running_server() {
    let (_db, options) = fresh_db().await;
    let url = url_of(&options);
    let ok = |out: &std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout.clone()).unwrap()
    };
    ok(&gridwatch_cli(&["users", "add", "kanban", "--role", "viewer"], &url).await);
    let token = ok(&gridwatch_cli(
        &["users", "token", "kanban", "--name", "wall display"],
        &url,
    )
    .await)
    .trim()
    .to_owned();
    let server = Child::serve(&["--listen", "127.0.0.1:0"], &[("DATABASE_URL", &url)]);
    let whoami = || {
        let (base, token) = (server.base.clone(), token.clone());
        async move {
            reqwest::Client::new()
                .get(format!("{base}/api/v1/session"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // the second and third answers come from the cache
    for _ in 0..3 {
        assert_eq!(whoami().await, 200);
    }
    let disabled = std::time::Instant::now();
    ok(&gridwatch_cli(&["users", "disable", "kanban"], &url).await);
    let mut status = whoami().await;
    while status == 200 && disabled.elapsed() < std::time::Duration::from_secs(10) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        status = whoami().await;
    }
    let waited = disabled.elapsed();
    assert_eq!(status, 401, "the disabled user's token is refused");
    assert!(
        waited < std::time::Duration::from_secs(3),
        "refused {waited:?} after the CLI started: told by the database, not by the entry's age"
    );
}
