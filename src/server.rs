//! Start-up and shutdown: choose the database (given `DATABASE_URL` or the embedded cluster),
//! migrate, optionally load the demo, build the index, serve until SIGTERM/Ctrl-C, then stop
//! the embedded cluster.

use crate::http::{app, AppState, HttpConfig};
use crate::storage::cluster::ManagedCluster;
use crate::storage::Db;
use crate::workflow::clock::Clock;
use crate::workflow::dispatch::NoticeConfig;
use crate::workflow::Gridwatch;
use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where the database lives, before anything is migrated: the server `DATABASE_URL` names, or
/// the embedded cluster in the data directory (started, and stopped by its drop).
pub struct Server {
    pub options: PgConnectOptions,
    pub cluster: Option<ManagedCluster>,
}

impl Server {
    pub async fn start(database_url: Option<&str>, data_dir: &Path) -> anyhow::Result<Server> {
        Ok(match database_url {
            Some(url) => Server {
                options: url
                    .parse::<PgConnectOptions>()
                    .context("DATABASE_URL is not a valid postgres:// URL")?,
                cluster: None,
            },
            None => {
                let dir = data_dir.to_owned();
                let cluster = tokio::task::spawn_blocking(move || ManagedCluster::start(&dir))
                    .await?
                    .context("starting the embedded PostgreSQL cluster")?;
                Server {
                    options: cluster.connect_options("gridwatch"),
                    cluster: Some(cluster),
                }
            }
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = self.cluster.take() {
            if let Err(e) = c.stop() {
                tracing::error!("stopping PostgreSQL: {e}");
            }
        }
    }
}

/// The database a command works on. Stops the embedded cluster when dropped.
pub struct Database {
    pub db: Db,
    cluster: Option<ManagedCluster>,
    /// the `DATABASE_URL` given, if any
    url: Option<String>,
}

impl Database {
    /// Connects to `database_url`, or creates/starts the embedded cluster in `data_dir`.
    pub async fn open(database_url: Option<&str>, data_dir: &Path) -> anyhow::Result<Database> {
        let mut server = Server::start(database_url, data_dir).await?;
        let (options, cluster) = (server.options.clone(), server.cluster.take());
        match Db::connect(options).await {
            Ok(db) => Ok(Database {
                db,
                cluster,
                url: database_url.map(str::to_owned),
            }),
            Err(e) => {
                if let Some(c) = cluster {
                    let _ = c.stop();
                }
                Err(e).context("connecting to PostgreSQL and migrating (is PostGIS installed?)")
            }
        }
    }

    /// A `postgres://` URL of database `name` on the same server, for other programs.
    pub fn url(&self, name: &str) -> anyhow::Result<String> {
        if let Some(c) = &self.cluster {
            return Ok(c.url(name));
        }
        let given = self.url.as_deref().unwrap_or_default();
        let mut url = reqwest::Url::parse(given).context("DATABASE_URL is not a URL")?;
        url.set_path(&format!("/{name}"));
        Ok(url.to_string())
    }

    /// Closes the pool and stops the embedded cluster, if any.
    pub async fn close(mut self) {
        self.db.pool().close().await;
        if let Some(c) = self.cluster.take() {
            if let Err(e) = tokio::task::spawn_blocking(move || c.stop()).await {
                tracing::error!("stopping PostgreSQL: {e}");
            }
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some(c) = self.cluster.take() {
            if let Err(e) = c.stop() {
                tracing::error!("stopping PostgreSQL: {e}");
            }
        }
    }
}

pub struct ServeOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub demo: bool,
    pub near_m: f64,
    pub web_dir: PathBuf,
    pub basemap_style_url: Option<String>,
    /// tests and demos: `POST /api/v1/clock/advance` moves the service's time forward
    pub controllable_clock: bool,
    pub notices: NoticeConfig,
    /// where report photos are kept
    pub photo_dir: PathBuf,
    /// mark the session cookie `Secure`
    pub secure_cookies: bool,
}

/// The web folder: `GRIDWATCH_WEB_DIR`, else `web/` of this source tree, else `./web`.
pub fn default_web_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("GRIDWATCH_WEB_DIR") {
        return PathBuf::from(d);
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    if built.join("index.html").exists() {
        built
    } else {
        PathBuf::from("web")
    }
}

pub async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    if !opts
        .web_dir
        .join("node_modules/maplibre-gl/package.json")
        .exists()
    {
        tracing::warn!(
            "{} has no node_modules/maplibre-gl: the map page needs `npm ci` in web/ (scripts/setup does it)",
            opts.web_dir.display()
        );
    }
    let database = Database::open(opts.database_url.as_deref(), &opts.data_dir).await?;
    let clock = if opts.controllable_clock {
        tracing::warn!("the clock is controllable: POST /api/v1/clock/advance moves time forward");
        Clock::controllable()
    } else {
        Clock::system()
    };
    let gw = Gridwatch::open(database.db.clone(), opts.near_m)
        .await?
        .with_clock(clock)
        .with_notices(opts.notices)
        .with_photo_dir(&opts.photo_dir);
    if let Err(e) = check_writable(&opts.photo_dir) {
        // The service still files reports; photo uploads answer 503 naming the folder.
        tracing::error!(dir = %opts.photo_dir.display(), "the photo folder is not writable: {e}");
    }
    if opts.demo {
        let loaded = crate::demo::load(&gw)
            .await
            .context("loading the demo data")?;
        tracing::info!(
            regions_created = loaded.regions_created,
            incidents = loaded.incidents_loaded,
            "demo data ready"
        );
    }
    if opts.demo {
        let added = gw
            .load_demo_users()
            .await
            .context("adding the demo users")?;
        if added > 0 {
            println!(
                "demo users added: {} (password {:?}; README lists them)",
                crate::workflow::accounts::DEMO_USERS
                    .map(|u| u.username)
                    .join(", "),
                crate::workflow::accounts::DEMO_PASSWORD
            );
        }
    } else if let Some(password) = gw.ensure_first_admin().await? {
        println!(
            "first run: created the user \"admin\" with the one-time password {password} \
             (log in and change it; `gridwatch users add` creates more)"
        );
    }
    let state = AppState::new(
        gw,
        HttpConfig {
            web_dir: opts.web_dir,
            basemap_style_url: opts.basemap_style_url,
            secure_cookies: opts.secure_cookies,
        },
    );
    // The escalation scheduler, the notice courier, the tile cache's change feed and the
    // database's health watcher run beside the server until shutdown.
    let gw = state.gw.clone();
    let background = [
        tokio::spawn(crate::workflow::scheduler::run(gw.clone(), gw.stopping())),
        tokio::spawn(crate::workflow::courier::run(gw.clone(), gw.stopping())),
        tokio::spawn(crate::workflow::tiles::follow_changes(
            gw.clone(),
            gw.stopping(),
        )),
        tokio::spawn(crate::storage::health::watch(gw.db.clone(), gw.stopping())),
    ];
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("binding {}", opts.listen))?;
    let addr = listener.local_addr()?;
    println!("gridwatch is serving http://{addr}/");
    // Answers go out as soon as they are written: a warm tile is one write of a few kilobytes,
    // and a client waiting on it should not wait for Nagle's algorithm.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
        }
    });
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown({
        let gw = gw.clone();
        async move {
            shutdown_signal().await;
            // Open consoles' event streams end now, so the graceful shutdown can finish.
            gw.shut_down();
        }
    })
    .await?;
    tracing::info!("requests drained, shutting down");
    for task in background {
        let _ = task.await;
    }
    // The requests are answered: send the notices they wrote now, for a bounded time; what is
    // left waits in the outbox for the next start.
    let courier = crate::workflow::courier::Courier::new();
    let drain = gw.deliver_notices(&courier);
    match tokio::time::timeout(OUTBOX_DRAIN, drain).await {
        Ok(Ok((sent, failed))) => tracing::info!(sent, failed, "outbox drained"),
        Ok(Err(e)) => tracing::warn!("draining the outbox: {e}"),
        Err(_) => tracing::warn!(
            "the outbox was not drained within {} s; the rest goes out at the next start",
            OUTBOX_DRAIN.as_secs()
        ),
    }
    database.close().await;
    Ok(())
}

/// How long shutdown waits for the last notices to go out.
const OUTBOX_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Creates `dir` if needed and proves a file can be written there.
fn check_writable(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(".write-probe");
    std::fs::write(&probe, b"ok")?;
    std::fs::remove_file(probe)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
