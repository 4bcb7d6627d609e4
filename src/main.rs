//! The `gridwatch` command line: serve, import regions, generate and load the demo, benchmark.

use anyhow::Context;
use clap::{Parser, Subcommand};
use gridwatch::domain::Crs;
use gridwatch::server::{default_web_dir, serve, Database, ServeOptions};
use gridwatch::storage::cluster::ManagedCluster;
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
    },
    /// Region registry commands.
    Regions {
        #[command(subcommand)]
        command: RegionsCommand,
    },
    /// Demo data commands.
    Demo {
        #[command(subcommand)]
        command: DemoCommand,
    },
    /// Benchmark: assign random points to the demo grids in memory and with PostGIS.
    Bench {
        #[arg(long, default_value_t = 1_000_000)]
        points: usize,
        #[arg(long, env = "GRIDWATCH_BENCH_DATA_DIR", default_value = "./var/bench")]
        data_dir: PathBuf,
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
    /// Embedded database commands.
    Db {
        #[command(subcommand)]
        command: DbCommand,
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
enum DbCommand {
    /// Stop an embedded cluster left running in the data directory.
    Stop {
        #[arg(long, env = "GRIDWATCH_DATA_DIR", default_value = "./var")]
        data_dir: PathBuf,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            db,
            demo,
            near_m,
            web_dir,
            basemap_style_url,
        } => {
            anyhow::ensure!(
                near_m.is_finite() && near_m >= 0.0,
                "--near-m must be a non-negative number"
            );
            serve(ServeOptions {
                listen,
                data_dir: db.data_dir,
                database_url: db.database_url,
                demo,
                near_m,
                web_dir: web_dir.unwrap_or_else(default_web_dir),
                basemap_style_url,
            })
            .await
        }
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
        Command::Bench {
            points,
            data_dir,
            database_url,
        } => gridwatch::bench::run(points, database_url.as_deref(), &data_dir).await,
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
