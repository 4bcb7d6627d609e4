//! Shared test plumbing: the database server, per-test databases, and request helpers.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use gridwatch::http::{app, AppState, HttpConfig};
use gridwatch::storage::cluster::ManagedCluster;
use gridwatch::storage::Db;
use gridwatch::workflow::Gridwatch;
use http_body_util::BodyExt;
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use tower::ServiceExt;

const TEMPLATE: &str = "gw_template";

/// The server every test database lives on.
pub struct Server {
    pub options: PgConnectOptions,
    _cluster: Option<ManagedCluster>,
}

pub fn tmp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

pub fn repo_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `TEST_DATABASE_URL` if set, else the embedded cluster in target/tmp/pg (started once per
/// test process and left running for the next run; `scripts/test` stops it).
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("TEST_DATABASE_URL") {
        Ok(url) => Server {
            options: url.parse().expect("TEST_DATABASE_URL"),
            _cluster: None,
        },
        Err(_) => {
            let cluster = ManagedCluster::start(&tmp_dir().join("pg"))
                .expect("start the embedded PostgreSQL cluster (is PostgreSQL installed? run scripts/setup)");
            Server {
                options: cluster.connect_options("postgres"),
                _cluster: Some(cluster),
            }
        }
    })
}

/// Creates the migrated template once per process; drops databases left by earlier runs.
async fn template() {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        let admin = server().options.clone().database("postgres");
        let mut conn = admin.connect().await.expect("connect to postgres");
        let stale: Vec<String> = sqlx::query_scalar(
            "select datname from pg_database where datname like 'gw\\_t\\_%' or datname = $1",
        )
        .bind(TEMPLATE)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for db in stale {
            sqlx::query(&format!("drop database if exists \"{db}\" with (force)"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        sqlx::query(&format!("create database {TEMPLATE}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let db = Db::connect(server().options.clone().database(TEMPLATE))
            .await
            .expect("migrate the template database");
        db.pool().close().await;
        conn.close().await.ok();
    })
    .await;
}

/// A connection to the test server's `postgres` database, to create and drop databases.
async fn maintenance_conn() -> sqlx::PgConnection {
    server()
        .options
        .clone()
        .database("postgres")
        .connect()
        .await
        .unwrap()
}

/// A fresh, migrated, empty database for one test.
pub async fn fresh_db() -> (Db, PgConnectOptions) {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    template().await;
    let name = format!(
        "gw_t_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    let mut conn = maintenance_conn().await;
    sqlx::query(&format!("create database {name} template {TEMPLATE}"))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    let options = server().options.clone().database(&name);
    let db = Db::connect(options.clone()).await.unwrap();
    (db, options)
}

/// A new database with nothing in it, not even the migrations (`tag` names it).
pub async fn empty_db(tag: &str) -> PgConnectOptions {
    template().await;
    let name = format!("gw_t_{}_{tag}", std::process::id());
    let mut conn = maintenance_conn().await;
    for sql in [
        format!("drop database if exists {name} with (force)"),
        format!("create database {name}"),
    ] {
        sqlx::query(&sql).execute(&mut conn).await.unwrap();
    }
    conn.close().await.ok();
    server().options.clone().database(&name)
}

/// Runs the `gridwatch` binary with `args` against the database `url` (quiet logs).
pub fn gridwatch_cli_blocking(args: &[&str], url: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gridwatch"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// [`gridwatch_cli_blocking`] off the async runtime's threads.
pub async fn gridwatch_cli(args: &[&str], url: &str) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        gridwatch_cli_blocking(&args, &url)
    })
    .await
    .unwrap()
}

/// A `postgres://` URL for a database of the test server, for child processes.
pub fn url_of(options: &PgConnectOptions) -> String {
    let db = options.get_database().unwrap_or("postgres");
    match options.get_socket() {
        Some(socket) => format!(
            "postgres://{}@localhost:{}/{db}?host={}",
            options.get_username(),
            options.get_port(),
            socket.display()
        ),
        None => format!(
            "postgres://{}@{}:{}/{db}",
            options.get_username(),
            options.get_host(),
            options.get_port()
        ),
    }
}

pub struct TestApp {
    pub gw: Gridwatch,
    pub router: Router,
    /// sent as `Authorization: Bearer` by `call` and `raw`: an admin's token, or none
    pub token: Option<String>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|gw| gw).await
}

/// A fresh app whose service `adjust` sets up first (a clock, notice channels).
pub async fn spawn_app_with(adjust: impl FnOnce(Gridwatch) -> Gridwatch) -> TestApp {
    let (db, _) = fresh_db().await;
    let gw = adjust(Gridwatch::open(db, 50.0).await.unwrap());
    let state = AppState::new(
        gw.clone(),
        HttpConfig {
            web_dir: repo_dir().join("web"),
            basemap_style_url: None,
            secure_cookies: false,
        },
    );
    // An admin acting through a token: tests of anything but access call as the admin.
    let password = gridwatch::workflow::accounts::DEMO_PASSWORD.to_owned();
    gw.add_user(gridwatch::workflow::accounts::NewUser {
        username: "admin".into(),
        display_name: Some("测试管理员".into()),
        role: gridwatch::access::Role::Admin,
        scope: None,
        department: None,
        password: Some(password),
    })
    .await
    .unwrap();
    let token = gw.add_user_token("admin", "tests").await.unwrap();
    TestApp {
        gw,
        router: app(state),
        token: Some(token),
    }
}

/// The demo regions loaded into a fresh app (no incidents).
pub async fn demo_app() -> TestApp {
    demo_app_with(|gw| gw).await
}

/// [`demo_app`] on a service that `adjust` set up.
pub async fn demo_app_with(adjust: impl FnOnce(Gridwatch) -> Gridwatch) -> TestApp {
    let app = spawn_app_with(adjust).await;
    app.gw
        .import_regions(
            gridwatch::demo::REGIONS_GEOJSON.as_bytes(),
            gridwatch::domain::Crs::Wgs84,
            true,
        )
        .await
        .unwrap();
    app
}

impl TestApp {
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "{method} {uri}: {status} with a non-JSON body: {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, value)
    }

    /// A request with any body and content type; the raw answer and its content type.
    pub async fn raw(
        &self,
        method: &str,
        uri: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, String, Vec<u8>) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", content_type);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(Body::from(body)).unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, ct, bytes)
    }

    /// The same app calling with another token (`None`: anonymous).
    pub fn as_caller(&self, token: Option<String>) -> TestApp {
        TestApp {
            gw: self.gw.clone(),
            router: self.router.clone(),
            token,
        }
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call("GET", uri, None).await
    }

    pub async fn post(&self, uri: &str, body: &Value) -> (StatusCode, Value) {
        self.call("POST", uri, Some(serde_json::to_vec(body).unwrap()))
            .await
    }

    pub async fn scalar_i64(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.gw.db.pool())
            .await
            .unwrap()
    }
}

/// A running `gridwatch serve` child process, killed when dropped.
pub struct Child {
    pub child: std::process::Child,
    pub base: String,
    /// every line the child printed on stdout so far
    pub output: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Child {
    /// Starts the binary with `args`, waits for its "serving" line, returns the base URL.
    pub fn serve(args: &[&str], envs: &[(&str, &str)]) -> Child {
        use std::io::{BufRead, BufReader};
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gridwatch"));
        cmd.arg("serve").args(args).env_remove("DATABASE_URL");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn gridwatch");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    output.lock().unwrap().push(line.clone());
                    if let Some(rest) = line.strip_prefix("gridwatch is serving ") {
                        break rest.trim_end_matches('/').to_owned();
                    }
                }
                _ => {
                    let status = child.wait();
                    panic!("gridwatch exited before serving: {status:?}");
                }
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        let kept = output.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Child {
            child,
            base,
            output,
        }
    }

    /// The one-time password of the first admin, as a first run without demo data printed it.
    pub fn first_admin_password(&self) -> Option<String> {
        self.output.lock().unwrap().iter().find_map(|l| {
            l.strip_prefix("first run: created the user \"admin\" with the one-time password ")
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
        })
    }

    /// Logs in as the first admin with the printed one-time password, changes it, and returns a
    /// client that sends the session cookie (sessions are in the database: they outlive restarts).
    pub async fn first_admin_client(&self) -> reqwest::Client {
        let otp = self
            .first_admin_password()
            .expect("a first run prints the admin's one-time password");
        let plain = reqwest::Client::new();
        let r = plain
            .post(format!("{}/api/v1/session", self.base))
            .json(&serde_json::json!({"username": "admin", "password": otp}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let cookie = r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["must_change_password"], true);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("cookie", cookie.parse().unwrap());
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap();
        // Nothing but the password change is allowed before it.
        let r = client
            .get(format!("{}/api/v1/cases", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let r = client
            .put(format!("{}/api/v1/session/password", self.base))
            .json(&serde_json::json!({"current_password": otp, "new_password": "a new password 2026"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        client
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A point inside the first current grid whose code starts with `prefix`, and its code.
pub async fn grid_point(app: &TestApp, prefix: &str) -> (String, f64, f64) {
    sqlx::query_as(
        "select code, st_x(p), st_y(p) from (
             select r.code, st_pointonsurface(v.geom) p from region r
               join region_version v on v.region_code = r.code and v.valid_to is null
              where r.level = 'grid' and r.code like $1 || '%' order by r.code limit 1) q",
    )
    .bind(prefix)
    .fetch_one(app.gw.db.pool())
    .await
    .unwrap()
}

/// A small file system mounted for one test (root only), unmounted when dropped.
pub struct SmallDisk(pub PathBuf);

impl SmallDisk {
    pub fn mount(dir: PathBuf, size: &str) -> SmallDisk {
        let _ = std::process::Command::new("umount").arg(&dir).output();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a {size} tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk(dir)
    }

    /// Writes a file until the disk is full.
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        for chunk in [vec![7u8; 1 << 20], vec![7u8; 4096], vec![7u8; 64]] {
            loop {
                match f.write_all(&chunk) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                    Err(e) => panic!("filling the disk: {e}"),
                }
            }
        }
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).output();
    }
}
