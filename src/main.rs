//! The `gridwatch` command line: serve, import regions, generate and load the demo, benchmark.

use anyhow::Context;
use clap::{Parser, Subcommand};
use gridwatch::domain::Crs;
use gridwatch::server::{default_web_dir, serve, Database, ServeOptions};
use gridwatch::storage::cluster::ManagedCluster;
use gridwatch::workflow::dispatch::NoticeConfig;
use gridwatch::workflow::{Gridwatch, WorkflowError};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "gridwatch",
    version,
    about = "Grid mapping and incident heatmaps for urban grid governance"
)]
struct Cli {
    /// log lines as `text` (for people) or `json` (one object per line, for a log collector)
    #[arg(long, global = true, env = "GRIDWATCH_LOG_FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct DbArgs {
    /// data directory of the embedded PostgreSQL cluster (used when DATABASE_URL is not set)
    #[arg(long, env = "GRIDWATCH_DATA_DIR", default_value = "./var")]
    data_dir: PathBuf,
    /// use this PostgreSQL + PostGIS server instead of the embedded cluster
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web service (map page and API).
    Serve {
        #[arg(long, env = "GRIDWATCH_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[command(flatten)]
        db: DbArgs,
        /// load the Wuhai demo data if it is not loaded yet
        #[arg(long)]
        demo: bool,
        /// points outside every grid but within this many metres of one go to the nearest
        #[arg(long, env = "GRIDWATCH_NEAR_M", default_value_t = 50.0)]
        near_m: f64,
        /// folder with the map page and its node_modules
        #[arg(long)]
        web_dir: Option<PathBuf>,
        /// optional MapLibre style URL drawn under gridwatch's layers
        #[arg(long, env = "GRIDWATCH_BASEMAP_STYLE_URL")]
        basemap_style_url: Option<String>,
        /// let POST /api/v1/clock/advance move the service's time forward (tests, demos)
        #[arg(long)]
        controllable_clock: bool,
        /// webhook of the SMS gateway: notices to departments, leaders and grid staff (else the log)
        #[arg(long, env = "GRIDWATCH_SMS_WEBHOOK")]
        sms_webhook: Option<String>,
        /// webhook of the supervision platform: 15-hour escalations and packages (else the log)
        #[arg(long, env = "GRIDWATCH_SUPERVISION_WEBHOOK")]
        supervision_webhook: Option<String>,
        /// folder for report photos (default: photos/ in the data directory)
        #[arg(long, env = "GRIDWATCH_PHOTO_DIR")]
        photo_dir: Option<PathBuf>,
        /// the session cookie's `Secure` flag: auto (unless listening on loopback), always, never
        #[arg(long, env = "GRIDWATCH_COOKIE_SECURE", default_value = "auto", value_parser = ["auto", "always", "never"])]
        cookie_secure: String,
    },
    /// Accounts: add, list, disable users; API tokens acting for a user.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Region registry commands.
    Regions {
        #[command(subcommand)]
        command: RegionsCommand,
    },
    /// Report commands.
    Reports {
        #[command(subcommand)]
        command: ReportsCommand,
    },
    /// Demo data commands.
    Demo {
        #[command(subcommand)]
        command: DemoCommand,
    },
    /// Benchmark: `locate` (in memory vs PostGIS), `dispatch` (intake and the scheduler),
    /// `import` (bulk report import), `hotspots` (Gi* vs esda), `tiles` (vs Martin) or `scale`
    /// (the index's memory and latency from 1k to 1M grids, vs PostGIS).
    Bench {
        /// locate: assign random points to the demo grids in memory and with PostGIS;
        /// dispatch: routing + case creation throughput, and 100,000 open deadlines
        /// import: `reports import` of a generated hotline CSV against a bare COPY
        /// hotspots: Gi* with permutations over the demo grids against PySAL esda
        /// tiles: incident tiles at z10/z13/z16, cold and warm, against Martin (scripts/bench-tiles)
        /// scale: the index over synthetic cities of --grids grids against a PostGIS GiST table
        #[arg(default_value = "locate", value_parser = ["locate", "dispatch", "import", "hotspots", "tiles", "scale"])]
        what: String,
        #[arg(long, default_value_t = 1_000_000)]
        points: usize,
        /// scale: grid counts, comma-separated
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "1000,10000,100000,1000000"
        )]
        grids: Vec<usize>,
        /// scale: points queried from PostGIS per size
        #[arg(long, default_value_t = 2_000)]
        queries: usize,
        /// import: rows in the generated CSV
        #[arg(long, default_value_t = 200_000)]
        rows: usize,
        /// hotspots: permutations per grid
        #[arg(long, default_value_t = 999)]
        permutations: usize,
        /// hotspots: the Python with esda and libpysal
        #[arg(long, default_value = "tests/.venv/bin/python")]
        python: PathBuf,
        /// tiles: incidents generated over the demo city
        #[arg(long, default_value_t = 1_000_000)]
        incidents: usize,
        /// tiles: tiles per zoom level
        #[arg(long, default_value_t = 40)]
        samples: usize,
        /// tiles: warm requests per tile and server
        #[arg(long, default_value_t = 50)]
        repeats: usize,
        /// tiles: the Martin binary
        #[arg(long, default_value = "target/martin/bin/martin")]
        martin: PathBuf,
        /// tiles: keep the generated database for the next run
        #[arg(long)]
        keep: bool,
        /// dispatch: reports filed per intake measurement
        #[arg(long, default_value_t = 20_000)]
        reports: usize,
        /// dispatch: concurrent clients filing reports
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// dispatch: open escalation deadlines for the scheduler
        #[arg(long, default_value_t = 100_000)]
        deadlines: usize,
        /// dispatch: the deadlines fall due over this many seconds
        #[arg(long, default_value_t = 20)]
        window_s: u64,
        #[arg(long, env = "GRIDWATCH_BENCH_DATA_DIR", default_value = "./var/bench")]
        data_dir: PathBuf,
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
    /// Vectorise a photographed hand-drawn grid map into WGS-84 polygons.
    Sketch {
        /// the photo or scan (PNG or JPEG)
        image: PathBuf,
        /// ground control point: pixel x, pixel y, lon, lat (repeat, at least 2)
        #[arg(long = "gcp", value_name = "PX,PY,LON,LAT", value_parser = parse_gcp)]
        gcps: Vec<(f64, f64, f64, f64)>,
        /// helmert, affine, projective, tps or auto (the simplest that fits within --tolerance-m)
        #[arg(long, default_value = "auto")]
        transform: String,
        /// coordinate system of the control points' lon/lat: wgs84, gcj02 or bd09
        #[arg(long, default_value = "wgs84")]
        crs: String,
        #[arg(long, default_value_t = 5.0)]
        tolerance_m: f64,
        /// output GeoJSON FeatureCollection
        #[arg(short, long)]
        out: PathBuf,
    },
    /// The generated hand-drawn sample sketches (geodata/sketches).
    Samples {
        #[command(subcommand)]
        command: SamplesCommand,
    },
    /// Open311 API keys.
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Embedded database commands.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Add a user and print their one-time password (changed at first login).
    Add {
        username: String,
        /// admin, dispatcher, street_leader, community_leader, planner, grid_worker, responder, viewer
        #[arg(long)]
        role: String,
        /// the region code the user is limited to (street, community, grid, or a planner's region)
        #[arg(long)]
        scope: Option<String>,
        /// a responder's department code (urban_management, fire_rescue …)
        #[arg(long)]
        department: Option<String>,
        /// the name shown in case histories
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the users.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Disable a user: ends their sessions and revokes their tokens.
    Disable {
        username: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Create an API token acting for a user (a hotline import, the SMS gateway) and print it.
    Token {
        username: String,
        /// what the token is for, e.g. "12345 hotline import"
        #[arg(long)]
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum ApikeyCommand {
    /// Create a key for a machine client and print it (only its hash is stored).
    Create {
        /// who the key is for, e.g. "12345 hotline"
        name: String,
        /// what the key may do: `reports` (Open311 and POST /reports) or `sms-gateway`
        /// (POST /notices/{id}/receipt only)
        #[arg(long, default_value = "reports")]
        purpose: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the keys and tokens: name, user it acts for, created, revoked.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke every live key of that name; requests with it are refused at once.
    Revoke {
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum RegionsCommand {
    /// Import a GeoJSON FeatureCollection of regions (all or nothing).
    Import {
        file: PathBuf,
        /// coordinate system of the file: wgs84 (or cgcs2000), gcj02, bd09
        #[arg(long, default_value = "wgs84")]
        crs: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum ReportsCommand {
    /// Import reports from a CSV (e.g. a 12345 hotline export) or a GeoJSON FeatureCollection of
    /// points: each row is checked and assigned to its grid; valid rows are loaded in one
    /// transaction, invalid ones are listed and written to a reject file. Opens no cases.
    Import {
        file: PathBuf,
        /// csv or geojson (default: from the file name)
        #[arg(long)]
        format: Option<String>,
        /// coordinates' reference system where a row has no crs: wgs84, gcj02, bd09
        #[arg(long, default_value = "wgs84")]
        crs: String,
        /// where the records came from where a row has no source
        #[arg(long, default_value = "hotline")]
        source: String,
        /// where to write the rejected rows (default: FILE.rejects.csv / .rejects.geojson)
        #[arg(long)]
        rejects: Option<PathBuf>,
        /// check and assign every row and write the reject file, but load nothing
        #[arg(long)]
        check: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum DemoCommand {
    /// Regenerate geodata/wuhai-regions.geojson and geodata/demo-incidents.csv.
    Generate {
        #[arg(long, default_value = "geodata/source")]
        source: PathBuf,
        #[arg(long, default_value = "geodata")]
        out: PathBuf,
    },
    /// Load the demo data into the database (idempotent).
    Load {
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum SamplesCommand {
    /// Regenerate the sample sketches, their truth and control points.
    Generate {
        #[arg(long, default_value = "geodata/sketches")]
        out: PathBuf,
    },
    /// Run every sample through the sketch flow and report accuracy and timings.
    Evaluate,
}

#[derive(Subcommand)]
enum DbCommand {
    /// Write the whole database to FILE (pg_dump's custom format); photos are not in it.
    Backup {
        file: PathBuf,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Restore FILE into an empty database (all or nothing), then migrate it to this version.
    Restore {
        file: PathBuf,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Stop an embedded cluster left running in the data directory.
    Stop {
        #[arg(long, env = "GRIDWATCH_DATA_DIR", default_value = "./var")]
        data_dir: PathBuf,
    },
}

fn parse_gcp(s: &str) -> Result<(f64, f64, f64, f64), String> {
    let v: Vec<f64> = s
        .split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{s:?}: expected four numbers PX,PY,LON,LAT"))?;
    match v[..] {
        [a, b, c, d] if v.iter().all(|x| x.is_finite()) => Ok((a, b, c, d)),
        _ => Err(format!("{s:?}: expected four finite numbers PX,PY,LON,LAT")),
    }
}

fn sketch_command(
    image: &std::path::Path,
    gcps: &[(f64, f64, f64, f64)],
    transform: &str,
    crs: &str,
    tolerance_m: f64,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    use gridwatch::sketch::{
        image_input, pipeline, transform::Gcp, transform::Requested, vectorise::VectoriseOptions,
    };
    let crs: Crs = crs.parse().map_err(|e| anyhow::anyhow!("--crs: {e}"))?;
    let requested: Requested = transform
        .parse()
        .map_err(|e| anyhow::anyhow!("--transform: {e}"))?;
    let bytes = std::fs::read(image).with_context(|| format!("reading {}", image.display()))?;
    let decoded = image_input::decode(&bytes).with_context(|| format!("{}", image.display()))?;
    let gcps = gcps
        .iter()
        .enumerate()
        .map(|(i, &(px, py, lon, lat))| {
            let p = gridwatch::domain::Wgs84Point::from_crs(lon, lat, crs)
                .map_err(|e| anyhow::anyhow!("--gcp {}: {e}", i + 1))?;
            Ok(Gcp {
                px,
                py,
                lon: p.lon(),
                lat: p.lat(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let outcome = pipeline::run(
        &decoded.image,
        &gcps,
        requested,
        tolerance_m,
        &VectoriseOptions::default(),
    )
    .map_err(|e| anyhow::anyhow!("fitting the control points: {e}"))?;
    let r = outcome.fit.report();
    eprintln!(
        "fit: {} from {} control points ({} requested), RMSE {:.2} m / {:.2} px{}",
        r.kind.as_str(),
        r.points,
        r.requested,
        r.rmse_m,
        r.rmse_px,
        r.rmse_per_dof_m
            .map(|v| format!(", per degree of freedom {v:.2} m"))
            .unwrap_or_default()
    );
    for res in &r.residuals {
        eprintln!(
            "  gcp {}: residual {:.2} m ({:.2} px){}{}",
            res.index + 1,
            res.metres,
            res.pixels,
            res.leave_one_out_m
                .map(|v| format!(", leave-one-out {v:.2} m"))
                .unwrap_or_default(),
            if res.outlier { "  OUTLIER" } else { "" }
        );
    }
    for w in r.warnings.iter().chain(&outcome.image_warnings) {
        eprintln!("  warning: {w}");
    }
    for p in &outcome.problems {
        eprintln!("  problem: {}", p.message);
    }
    let fc = pipeline::to_geojson(&outcome);
    std::fs::write(out, serde_json::to_vec_pretty(&fc)?)
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "{} polygons written to {}",
        outcome.candidates.len(),
        out.display()
    );
    Ok(())
}

/// Logs go to standard error, filtered by `RUST_LOG`; as JSON lines with `json`.
fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        logs.json()
            .flatten_event(true)
            .with_current_span(true)
            .init();
    } else {
        logs.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // An empty DATABASE_URL means "not set": use the embedded cluster.
    if std::env::var_os("DATABASE_URL").is_some_and(|v| v.is_empty()) {
        std::env::remove_var("DATABASE_URL");
    }
    let cli = Cli::parse();
    init_tracing(&cli.log_format);
    match cli.command {
        Command::Serve {
            listen,
            db,
            demo,
            near_m,
            web_dir,
            basemap_style_url,
            controllable_clock,
            sms_webhook,
            supervision_webhook,
            photo_dir,
            cookie_secure,
        } => {
            anyhow::ensure!(
                near_m.is_finite() && near_m >= 0.0,
                "--near-m must be a non-negative number"
            );
            for (flag, url) in [
                ("--sms-webhook", &sms_webhook),
                ("--supervision-webhook", &supervision_webhook),
            ] {
                if let Some(u) = url {
                    let ok = reqwest::Url::parse(u)
                        .is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.has_host());
                    anyhow::ensure!(ok, "{flag} {u:?} is not an http:// or https:// URL");
                }
            }
            serve(ServeOptions {
                listen,
                photo_dir: photo_dir.unwrap_or_else(|| db.data_dir.join("photos")),
                data_dir: db.data_dir,
                database_url: db.database_url,
                demo,
                near_m,
                web_dir: web_dir.unwrap_or_else(default_web_dir),
                basemap_style_url,
                controllable_clock,
                secure_cookies: match cookie_secure.as_str() {
                    "always" => true,
                    "never" => false,
                    _ => !listen.ip().is_loopback(),
                },
                notices: NoticeConfig {
                    sms_webhook,
                    supervision_webhook,
                },
            })
            .await
        }
        Command::Reports {
            command:
                ReportsCommand::Import {
                    file,
                    format,
                    crs,
                    source,
                    rejects,
                    check,
                    db,
                },
        } => import_reports(file, format, crs, source, rejects, check, db).await,
        Command::Regions {
            command: RegionsCommand::Import { file, crs, db },
        } => {
            let crs: Crs = crs.parse().map_err(|e| anyhow::anyhow!("--crs: {e}"))?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let database = Database::open(db.database_url.as_deref(), &db.data_dir).await?;
            let gw = Gridwatch::open(database.db.clone(), 50.0).await?;
            let result = gw.import_regions(&bytes, crs, false).await;
            database.close().await;
            match result {
                Ok(summary) => {
                    println!(
                        "imported {}: {} created, {} new boundary versions, {} boundaries unchanged",
                        file.display(),
                        summary.created,
                        summary.new_versions,
                        summary.unchanged_boundaries
                    );
                    Ok(())
                }
                Err(WorkflowError::Rejected(problems)) => {
                    eprintln!("{} rejected; nothing was written:", file.display());
                    for p in &problems {
                        let at = p
                            .feature
                            .map(|f| format!("feature {f}"))
                            .unwrap_or_else(|| "file".into());
                        eprintln!(
                            "  {at}{}: {} ({})",
                            p.code
                                .as_deref()
                                .map(|c| format!(" [{c}]"))
                                .unwrap_or_default(),
                            p.message,
                            p.kind
                        );
                    }
                    std::process::exit(2);
                }
                Err(e) => Err(e.into()),
            }
        }
        Command::Demo {
            command: DemoCommand::Generate { source, out },
        } => {
            let (regions, incidents) = gridwatch::demo::generate::generate(&source, &out)?;
            println!(
                "wrote {regions} regions and {incidents} incidents to {}",
                out.display()
            );
            Ok(())
        }
        Command::Demo {
            command: DemoCommand::Load { db },
        } => {
            let database = Database::open(db.database_url.as_deref(), &db.data_dir).await?;
            let gw = Gridwatch::open(database.db.clone(), 50.0).await?;
            let loaded = gridwatch::demo::load(&gw).await;
            database.close().await;
            let loaded = loaded?;
            println!(
                "demo: {} regions created, {} incidents loaded",
                loaded.regions_created, loaded.incidents_loaded
            );
            Ok(())
        }
        Command::Users { command } => users(command).await,
        Command::Apikey { command } => apikeys(command).await,
        Command::Bench {
            what,
            points,
            rows,
            permutations,
            python,
            reports,
            clients,
            deadlines,
            window_s,
            incidents,
            samples,
            repeats,
            martin,
            keep,
            grids,
            queries,
            data_dir,
            database_url,
        } => match what.as_str() {
            "scale" => {
                let opts = gridwatch::bench_scale::Options {
                    grids,
                    points,
                    queries,
                };
                gridwatch::bench_scale::run(opts, database_url.as_deref(), &data_dir).await
            }
            "tiles" => {
                let opts = gridwatch::bench_tiles::Options {
                    incidents,
                    samples,
                    repeats,
                    martin,
                    keep,
                };
                gridwatch::bench_tiles::run(opts, database_url.as_deref(), &data_dir).await
            }
            "import" => {
                gridwatch::bench_import::run(rows, database_url.as_deref(), &data_dir).await
            }
            "hotspots" => {
                gridwatch::bench_hotspots::run(
                    permutations,
                    &python,
                    database_url.as_deref(),
                    &data_dir,
                )
                .await
            }
            "dispatch" => {
                let sizes = gridwatch::bench_dispatch::Sizes {
                    reports,
                    clients,
                    deadlines,
                    window_s,
                };
                gridwatch::bench_dispatch::run(sizes, database_url.as_deref(), &data_dir).await
            }
            _ => gridwatch::bench::run(points, database_url.as_deref(), &data_dir).await,
        },
        Command::Sketch {
            image,
            gcps,
            transform,
            crs,
            tolerance_m,
            out,
        } => sketch_command(&image, &gcps, &transform, &crs, tolerance_m, &out),
        Command::Samples {
            command: SamplesCommand::Generate { out },
        } => {
            let n = gridwatch::sketch::samples::write_samples(&out)?;
            println!("wrote {n} samples to {}", out.display());
            Ok(())
        }
        Command::Samples {
            command: SamplesCommand::Evaluate,
        } => {
            use gridwatch::sketch::evaluation;
            let s = evaluation::evaluate_samples(&Default::default())?;
            println!("sample                       size       transform  drawn found recovered mean IoU  vectorise  clean (fixes)");
            for r in &s.samples {
                println!(
                    "{:<28} {:>4}×{:<4}  {:<10} {:>5} {:>5} {:>9} {:>8.3} {:>8.0} ms {:>5.0} ms ({})",
                    r.name, r.width, r.height, r.transform, r.accuracy.drawn, r.accuracy.found,
                    r.accuracy.recovered, r.accuracy.mean_iou, r.millis, r.clean_millis, r.fixes
                );
            }
            println!(
                "all samples: mean IoU {:.3}, {} of {} drawn areas recovered ({:.1} %)",
                s.mean_iou,
                s.recovered,
                s.drawn,
                100.0 * s.recovered as f64 / s.drawn.max(1) as f64
            );
            let (ms, issues, fixes) = evaluation::clean_demo_coverage()?;
            println!("validate + clean of the 704 demo grids, community by community: {ms:.0} ms ({issues} issues, {fixes} fixes)");
            Ok(())
        }
        Command::Db {
            command: DbCommand::Backup { file, db },
        } => {
            let held =
                gridwatch::backup::backup(db.database_url.as_deref(), &db.data_dir, &file).await?;
            let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            println!(
                "backed up {held} to {} ({:.1} MB); copy the photo folder beside it",
                file.display(),
                bytes as f64 / 1e6
            );
            Ok(())
        }
        Command::Db {
            command: DbCommand::Restore { file, db },
        } => {
            let held =
                gridwatch::backup::restore(db.database_url.as_deref(), &db.data_dir, &file).await?;
            println!("restored {held} from {}", file.display());
            Ok(())
        }
        Command::Db {
            command: DbCommand::Stop { data_dir },
        } => {
            let stopped =
                tokio::task::spawn_blocking(move || ManagedCluster::stop_leftover(&data_dir))
                    .await??;
            println!(
                "{}",
                if stopped {
                    "stopped the embedded PostgreSQL"
                } else {
                    "no embedded PostgreSQL to stop"
                }
            );
            Ok(())
        }
    }
}

/// `gridwatch reports import`: exit 0 when every row loaded (or, with `--check`, would load), 2
/// when some were rejected (listed, and written to the reject file), 1 when the file as a whole
/// was refused (nothing written).
async fn import_reports(
    file: PathBuf,
    format: Option<String>,
    crs: String,
    source: String,
    rejects: Option<PathBuf>,
    check_only: bool,
    db: DbArgs,
) -> anyhow::Result<()> {
    use gridwatch::workflow::report_import::{reject_file, ImportFormat, ImportOptions};
    use std::io::{IsTerminal, Write};
    let format = match format.as_deref() {
        None => ImportFormat::from_path(&file),
        Some("csv") => ImportFormat::Csv,
        Some("geojson") => ImportFormat::GeoJson,
        Some(other) => anyhow::bail!("--format {other:?}: use csv or geojson"),
    };
    let opts = ImportOptions {
        crs: crs.parse().map_err(|e| anyhow::anyhow!("--crs: {e}"))?,
        source: gridwatch::domain::ReportSource::parse(&source)
            .map_err(|e| anyhow::anyhow!("--source: {}", e.message))?,
        check_only,
    };
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let database = Database::open(db.database_url.as_deref(), &db.data_dir).await?;
    let gw = Gridwatch::open(database.db.clone(), 50.0).await?;
    let started = std::time::Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut last_tenth = 0;
    let result = gw
        .import_reports(&bytes, format, &opts, |done, total| {
            let mut err = std::io::stderr();
            if tty {
                let width = 30;
                let filled = (done * width / total.max(1)).min(width);
                let _ = write!(
                    err,
                    "\r[{}{}] {:>3}%  {done}/{total} rows",
                    "#".repeat(filled),
                    "-".repeat(width - filled),
                    done * 100 / total.max(1)
                );
                let _ = err.flush();
            } else if done * 10 / total.max(1) > last_tenth || done == total {
                last_tenth = done * 10 / total.max(1);
                let _ = writeln!(err, "checked {done}/{total} rows");
            }
        })
        .await;
    if tty {
        eprintln!();
    }
    database.close().await;
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}: {e}; nothing was written", file.display());
            std::process::exit(1);
        }
    };
    let secs = started.elapsed().as_secs_f64();
    if check_only {
        println!(
            "{}: {} rows checked; {} valid, {} rejected; nothing was written; {:.2} s ({:.0} rows/s)",
            file.display(),
            outcome.rows,
            outcome.rows - outcome.rejected.len(),
            outcome.rejected.len(),
            secs,
            outcome.rows as f64 / secs.max(1e-9)
        );
    } else {
        println!(
            "{}: {} rows; {} loaded, {} already loaded before, {} rejected; {:.2} s ({:.0} rows/s)",
            file.display(),
            outcome.rows,
            outcome.loaded.inserted,
            outcome.loaded.already_loaded,
            outcome.rejected.len(),
            secs,
            outcome.rows as f64 / secs.max(1e-9)
        );
    }
    if outcome.rejected.is_empty() {
        return Ok(());
    }
    let what = if format == ImportFormat::Csv {
        "line"
    } else {
        "feature"
    };
    for r in outcome.rejected.iter().take(50) {
        eprintln!("  {what} {}: {}", r.line, r.reason);
    }
    if outcome.rejected.len() > 50 {
        eprintln!("  … and {} more", outcome.rejected.len() - 50);
    }
    let path = rejects.unwrap_or_else(|| {
        let ext = if format == ImportFormat::Csv {
            "rejects.csv"
        } else {
            "rejects.geojson"
        };
        file.with_extension(ext)
    });
    std::fs::write(&path, reject_file(&outcome, format))
        .with_context(|| format!("writing the reject file {}", path.display()))?;
    eprintln!("rejected rows written to {}", path.display());
    std::process::exit(2);
}

async fn apikeys(command: ApikeyCommand) -> anyhow::Result<()> {
    let (ApikeyCommand::Create { db, .. }
    | ApikeyCommand::List { db }
    | ApikeyCommand::Revoke { db, .. }) = &command;
    let database = Database::open(db.database_url.as_deref(), &db.data_dir).await?;
    let result = async {
        match &command {
            ApikeyCommand::Create { name, purpose, .. } => {
                let purpose =
                    gridwatch::access::ClientPurpose::parse(purpose).ok_or_else(|| {
                        anyhow::anyhow!("--purpose is reports or sms-gateway, not {purpose:?}")
                    })?;
                let gw = Gridwatch::open(database.db.clone(), 50.0).await?;
                let key: String = {
                    use rand::Rng;
                    let bytes: [u8; 20] = rand::rng().random();
                    hex::encode(bytes)
                };
                gw.add_api_key(name, &key, purpose).await?;
                println!("{key}");
            }
            ApikeyCommand::List { .. } => {
                println!(
                    "{:<6} {:<28} {:<12} {:<14} {:<20} revoked",
                    "id", "name", "purpose", "user", "created"
                );
                for k in database.db.api_clients().await? {
                    println!(
                        "{:<6} {:<28} {:<12} {:<14} {:<20} {}",
                        k.id,
                        k.name,
                        k.purpose,
                        k.username.as_deref().unwrap_or("-"),
                        k.created_at.format("%Y-%m-%d %H:%M"),
                        k.revoked_at
                            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                            .unwrap_or_default()
                    );
                }
            }
            ApikeyCommand::Revoke { name, .. } => {
                match database.db.revoke_api_client(name).await? {
                    0 => anyhow::bail!(
                        "no live API key is named {name:?} (see gridwatch apikey list)"
                    ),
                    n => println!("revoked {n} key(s) named {name:?}"),
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    database.close().await;
    result
}

async fn users(command: UsersCommand) -> anyhow::Result<()> {
    use gridwatch::access::Role;
    use gridwatch::workflow::accounts::NewUser;
    let db = match &command {
        UsersCommand::Add { db, .. }
        | UsersCommand::List { db }
        | UsersCommand::Disable { db, .. }
        | UsersCommand::Token { db, .. } => db.clone(),
    };
    let database = Database::open(db.database_url.as_deref(), &db.data_dir).await?;
    let result = async {
        let gw = Gridwatch::open(database.db.clone(), 50.0).await?;
        match command {
            UsersCommand::Add {
                username,
                role,
                scope,
                department,
                name,
                ..
            } => {
                let role = Role::parse(&role).map_err(|e| anyhow::anyhow!("--{e}"))?;
                let (user, password) = gw
                    .add_user(NewUser {
                        username,
                        display_name: name,
                        role,
                        scope,
                        department,
                        password: None,
                    })
                    .await
                    .map_err(user_error)?;
                println!(
                    "added {} ({}); one-time password: {}",
                    user.username,
                    user.role,
                    password.unwrap_or_default()
                );
            }
            UsersCommand::List { .. } => {
                println!("username\trole\tscope\tdepartment\tstate\tname");
                for a in gw.db.accounts().await? {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        a.username,
                        a.role,
                        a.scope_code.as_deref().unwrap_or("-"),
                        a.department.as_deref().unwrap_or("-"),
                        if a.disabled_at.is_some() {
                            "disabled"
                        } else if a.must_change_password {
                            "one-time password"
                        } else {
                            "active"
                        },
                        a.display_name
                    );
                }
            }
            UsersCommand::Disable { username, .. } => {
                anyhow::ensure!(gw.disable_user(&username).await?, "no user {username:?}");
                gw.db
                    .audit(&gridwatch::storage::accounts::AuditEntry {
                        account_id: None,
                        actor: "cli",
                        action: "user.disable",
                        subject: &format!("user:{username}"),
                        detail: &serde_json::json!({}),
                    })
                    .await?;
                println!("disabled {username}: sessions ended, tokens revoked");
            }
            UsersCommand::Token { username, name, .. } => {
                let token = gw
                    .add_user_token(&username, &name)
                    .await
                    .map_err(user_error)?;
                println!("{token}");
            }
        }
        anyhow::Ok(())
    }
    .await;
    database.close().await;
    result
}

/// A workflow error as the command line says it: `--scope: no region with code …`.
fn user_error(e: WorkflowError) -> anyhow::Error {
    match e {
        WorkflowError::Invalid { field, message } => anyhow::anyhow!("--{field}: {message}"),
        other => anyhow::Error::new(other),
    }
}
