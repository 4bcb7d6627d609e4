//! `gridwatch bench tiles`: incident tiles from a running `gridwatch serve` against Martin (the
//! PostGIS tile server, installed from crates.io by `scripts/bench-tiles`) over the same table in
//! the same run.
//!
//! The run generates `--incidents` reports over the demo city (clustered around hot spots the way
//! complaints gather, with a quarter spread evenly), starts both servers on the same database
//! and asks each for the same tiles at z10, z13 and z16: every tile once while neither has it
//! (cold: the query, compression and sending; each server's statements were run once
//! beforehand, so neither pays the disk for the other), then `--repeats` times more (warm).
//! Martin serves a function source whose body is the PostGIS statements of
//! [`crate::storage::tiles::incident_queries`] (`count`, then `raw` or `cells`, through the
//! spatial index), the tile SQL a PostGIS tile server over this table runs; gridwatch counts
//! its cells from the quadkey index instead ([`crate::tiles::quadkey`]). The aggregation is the
//! same, so the tiles carry the same features (a report within 2 cm of a cell's or the
//! buffer's edge may land on the other side of it). Figures: p50 and p99
//! latency per zoom and the ratio Martin/gridwatch (above 1: gridwatch faster), each server's
//! HTTP floor (its health check from the same client) and what a warm tile costs above it, and
//! both servers' memory (VmHWM, VmRSS) once the tiles were served.
//!
//! Works in a database of its own (`gridwatch_bench_tiles`); with `--keep` it is left for the
//! next run, which reuses its reports when their number is the same.

use crate::domain::Level;
use crate::server::Database;
use crate::storage::bulk::CopyRows;
use crate::storage::tiles::incident_queries;
use crate::storage::Db;
use crate::tiles::{TileId, CELLS_PER_SIDE, MAX_RAW_FEATURES, RAW_FROM_ZOOM};
use crate::workflow::intake::ReportInput;
use crate::workflow::Gridwatch;
use anyhow::Context;
use chrono::Duration;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

const BENCH_DB: &str = "gridwatch_bench_tiles";
/// The meta key holding how many reports the bench database was filled with.
const MARKER: &str = "bench_tiles_incidents";
/// Reports per COPY transaction while filling.
const BATCH: usize = 500_000;
const ZOOMS: [u8; 3] = [10, 13, 16];

pub struct Options {
    pub incidents: usize,
    /// tiles per zoom (fewer where the city has fewer)
    pub samples: usize,
    /// warm requests per tile and server
    pub repeats: usize,
    pub martin: PathBuf,
    pub keep: bool,
}

pub async fn run(opts: Options, database_url: Option<&str>, data_dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(opts.incidents >= 1000, "--incidents must be at least 1000");
    anyhow::ensure!(opts.samples > 0, "--samples must be positive");
    anyhow::ensure!(
        opts.martin.exists(),
        "Martin is not at {}: scripts/bench-tiles installs it (cargo install martin --root target/martin)",
        opts.martin.display()
    );
    let database = Database::open(database_url, data_dir).await?;
    let url = database.url(BENCH_DB)?;
    let db = Db::connect(database.db.options().database(BENCH_DB)).await?;
    let result = run_with(&db, &url, &opts, data_dir).await;
    db.pool().close().await;
    if !opts.keep {
        use sqlx::ConnectOptions;
        let mut conn = database.db.options().database("postgres").connect().await?;
        sqlx::query(&format!("drop database if exists {BENCH_DB} with (force)"))
            .execute(&mut conn)
            .await
            .context("dropping the bench database")?;
    }
    database.close().await;
    result
}

async fn run_with(db: &Db, url: &str, opts: &Options, data_dir: &Path) -> anyhow::Result<()> {
    let gw = crate::bench::demo_city(db.clone()).await?;
    fill(&gw, opts.incidents).await?;
    install_peer_function(db).await?;
    let (table_mb,): (f64,) =
        sqlx::query_as("select pg_total_relation_size('report')::float8 / 1048576")
            .fetch_one(db.pool())
            .await?;
    println!(
        "tile benchmark: {} incidents over the Wuhai demo ({table_mb:.0} MB with indexes), {} tiles per zoom at most, {} warm requests per tile",
        opts.incidents, opts.samples, opts.repeats
    );

    let ours_port = free_port()?;
    let martin_port = free_port()?;
    let config = data_dir.join("martin-bench.yaml");
    std::fs::create_dir_all(data_dir)?;
    std::fs::write(&config, martin_config(url, martin_port))?;
    let ours = Server::start(
        "gridwatch",
        Command::new(std::env::current_exe()?)
            .args(["serve", "--listen", &format!("127.0.0.1:{ours_port}")])
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "warn"),
        format!("http://127.0.0.1:{ours_port}/healthz"),
    )
    .await?;
    let martin = Server::start(
        "martin",
        Command::new(&opts.martin)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn"),
        format!("http://127.0.0.1:{martin_port}/health"),
    )
    .await?;
    // gridwatch serves staff the full map (the public view suppresses small counts): a viewer's
    // token, as a street leader's browser would send its session.
    let viewer = format!("bench-viewer-{}", std::process::id());
    let gw = Gridwatch::open(db.clone(), 50.0).await?;
    gw.add_user(crate::workflow::accounts::NewUser {
        username: viewer.clone(),
        display_name: None,
        role: crate::access::Role::Viewer,
        scope: None,
        department: None,
        password: Some(crate::access::password::random_secret(16)),
    })
    .await?;
    let token = gw.add_user_token(&viewer, "tile benchmark").await?;
    let bearer = format!("Bearer {token}");
    let localhost = std::net::Ipv4Addr::LOCALHOST;
    let mut ours_http = BareHttp::new((localhost, ours_port).into(), &[("authorization", &bearer)]);
    let mut martin_http = BareHttp::new((localhost, martin_port).into(), &[]);
    // What the same client waits for a response that costs nothing to make: each server's
    // health check, kept alive. A warm tile cannot come back faster than this.
    let mut floor = (Vec::new(), Vec::new());
    for i in 0..opts.repeats.max(1) * 50 {
        if i % 2 == 0 {
            floor.0.push(fetch(&mut ours_http, "/healthz")?.ms);
            floor.1.push(fetch(&mut martin_http, "/health")?.ms);
        } else {
            floor.1.push(fetch(&mut martin_http, "/health")?.ms);
            floor.0.push(fetch(&mut ours_http, "/healthz")?.ms);
        }
    }
    line(
        "  HTTP floor: each server's health check",
        &mut floor.0,
        &mut floor.1,
    );
    let floor_p50 = (percentile(&floor.0, 0.5), percentile(&floor.1, 0.5));
    // (byte-identical, as many features, tiles compared)
    let mut identical = (0usize, 0usize, 0usize);
    for z in ZOOMS {
        let tiles = tiles_at(db, z, opts.samples).await?;
        let ours_url = |t: TileId| format!("/tiles/incidents/{}/{}/{}.mvt", t.z, t.x, t.y);
        let martin_url = |t: TileId| format!("/incidents/{}/{}/{}", t.z, t.x, t.y);
        let mut cold = (Vec::new(), Vec::new());
        let mut features = Vec::new();
        let mut bytes = 0usize;
        for (i, &t) in tiles.iter().enumerate() {
            // The tile's rows are read once beforehand (not timed), so both servers meet the same
            // warm database and neither pays the disk for the other; alternate who goes first
            // all the same.
            db.incidents_tile(t, &crate::tiles::TileFilter::default(), false)
                .await?;
            sqlx::query("select length(gw_bench_incidents($1, $2, $3))")
                .bind(t.z as i32)
                .bind(t.x as i32)
                .bind(t.y as i32)
                .execute(db.pool())
                .await?;
            let (a, b) = if i % 2 == 0 {
                let a = fetch(&mut ours_http, &ours_url(t))?;
                (a, fetch(&mut martin_http, &martin_url(t))?)
            } else {
                let b = fetch(&mut martin_http, &martin_url(t))?;
                (fetch(&mut ours_http, &ours_url(t))?, b)
            };
            cold.0.push(a.ms);
            cold.1.push(b.ms);
            identical.2 += 1;
            identical.0 += usize::from(a.mvt == b.mvt);
            identical.1 += usize::from(count_features(&a.mvt) == count_features(&b.mvt));
            features.push(count_features(&a.mvt));
            bytes += a.gzip_len;
        }
        let mut warm = (Vec::new(), Vec::new());
        for r in 0..opts.repeats {
            for &t in &tiles {
                if r % 2 == 0 {
                    warm.0.push(fetch(&mut ours_http, &ours_url(t))?.ms);
                    warm.1.push(fetch(&mut martin_http, &martin_url(t))?.ms);
                } else {
                    warm.1.push(fetch(&mut martin_http, &martin_url(t))?.ms);
                    warm.0.push(fetch(&mut ours_http, &ours_url(t))?.ms);
                }
            }
        }
        features.sort_unstable();
        println!(
            "  z{z}: {} tiles, features per tile median {} max {}, {:.0} kB gzip on average",
            tiles.len(),
            features[features.len() / 2],
            features[features.len() - 1],
            bytes as f64 / tiles.len() as f64 / 1024.0
        );
        line("cold", &mut cold.0, &mut cold.1);
        if opts.repeats > 0 {
            line("warm", &mut warm.0, &mut warm.1);
            // what each server spends on a warm tile beyond the bare round trip
            let above = |v: &[f64], floor: f64| {
                let ms = percentile(v, 0.5) - floor;
                if ms < 0.0005 {
                    "none (at or below its floor)".to_owned()
                } else {
                    format!("{ms:.3} ms")
                }
            };
            println!(
                "      warm p50 above each server's HTTP floor: gridwatch {} | Martin {}",
                above(&warm.0, floor_p50.0),
                above(&warm.1, floor_p50.1),
            );
        }
    }
    println!(
        "  the same tiles from both servers: {} of {} with as many features, {} byte-identical once decompressed (the rest list them in another order)",
        identical.1, identical.2, identical.0
    );
    for server in [&ours, &martin] {
        let (hwm, rss) = server.memory()?;
        println!(
            "  {} memory after serving: peak {:.0} MB, now {:.0} MB",
            server.name,
            hwm as f64 / 1024.0,
            rss as f64 / 1024.0
        );
    }
    ours.stop();
    martin.stop();
    Ok(())
}

/// Fills the bench database with `n` generated reports unless it already holds them.
async fn fill(gw: &Gridwatch, n: usize) -> anyhow::Result<()> {
    let have = gw.db.meta(MARKER).await?;
    if have.as_deref() == Some(n.to_string().as_str()) {
        println!("reusing the {n} reports of an earlier run (--keep)");
        return Ok(());
    }
    sqlx::query("truncate report cascade")
        .execute(gw.db.pool())
        .await?;
    let started = Instant::now();
    let mut points = ClusteredPoints::new(gw, 20261203);
    let categories: Vec<String> = gw.categories().keys().cloned().collect();
    let sources = ["grid_worker", "rider", "resident", "hotline"];
    let now = gw.clock.now();
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let mut loaded = 0usize;
    while loaded < n {
        let batch = BATCH.min(n - loaded);
        let mut chunks = Vec::with_capacity(batch / 50_000 + 1);
        let mut rows = CopyRows::with_capacity(50_000);
        for i in 0..batch {
            let (lon, lat) = points.next_point();
            let input = ReportInput {
                category: categories[rng.random_range(0..categories.len())].clone(),
                lon,
                lat,
                source: sources[rng.random_range(0..sources.len())].to_owned(),
                reported_at: Some(now - Duration::seconds(rng.random_range(60..365 * 86_400))),
                ..Default::default()
            };
            let (row, _) = gw.prepare_report(&input, now)?;
            rows.push(&row, None);
            if (i + 1) % 50_000 == 0 {
                chunks.push(std::mem::replace(
                    &mut rows,
                    CopyRows::with_capacity(50_000),
                ));
            }
        }
        chunks.push(rows);
        gw.db.copy_reports(chunks).await?;
        loaded += batch;
        let s = started.elapsed().as_secs_f64();
        println!(
            "  generated and loaded {loaded} of {n} reports ({:.0}/s)",
            loaded as f64 / s
        );
    }
    // Vacuum now rather than let autovacuum work through the new rows while tiles are timed (an
    // insert-only table is vacuumed too), and set every row's hint bits once for both servers.
    let started = Instant::now();
    sqlx::query("vacuum (analyze) report, dispatch_case")
        .execute(gw.db.pool())
        .await?;
    println!(
        "  vacuumed the reports in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    gw.db.set_meta(MARKER, &n.to_string()).await?;
    Ok(())
}

/// Points over the demo city: three quarters around 80 hot spots (centres of random grids, each
/// a normal spread of 100–600 m, the first spots the busiest), a quarter evenly over the streets.
struct ClusteredPoints {
    rng: ChaCha8Rng,
    spots: Vec<(f64, f64, f64)>,
    streets: Vec<geo::Rect<f64>>,
}

impl ClusteredPoints {
    fn new(gw: &Gridwatch, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let index = gw.index();
        let centre = |r: &crate::spatial::index::RegionRecord| {
            geo::BoundingRect::bounding_rect(&r.geom).map(|b| b.center())
        };
        let grids: Vec<geo::Coord<f64>> = index
            .records()
            .filter(|r| r.level == Level::Grid)
            .filter_map(centre)
            .collect();
        let spots = (0..80)
            .map(|_| {
                let c = grids[rng.random_range(0..grids.len())];
                (c.x, c.y, rng.random_range(100.0..600.0))
            })
            .collect();
        let streets = index
            .records()
            .filter(|r| r.level == Level::Street)
            .filter_map(|r| geo::BoundingRect::bounding_rect(&r.geom))
            .collect();
        ClusteredPoints {
            rng,
            spots,
            streets,
        }
    }

    fn next_point(&mut self) -> (f64, f64) {
        if self.rng.random::<f64>() < 0.25 {
            let b = self.streets[self.rng.random_range(0..self.streets.len())];
            return (
                b.min().x + self.rng.random::<f64>() * b.width(),
                b.min().y + self.rng.random::<f64>() * b.height(),
            );
        }
        // Spot k with weight 1/(k + 1): drawn by inverting the harmonic cumulative sum roughly.
        let k = ((self.spots.len() as f64 + 1.0).powf(self.rng.random::<f64>()) - 1.0) as usize;
        let (lon, lat, sigma_m) = self.spots[k.min(self.spots.len() - 1)];
        // Box–Muller
        let (u1, u2): (f64, f64) = (self.rng.random_range(1e-12..1.0), self.rng.random());
        let r = (-2.0 * u1.ln()).sqrt() * sigma_m;
        let (dx, dy) = (
            r * (std::f64::consts::TAU * u2).cos(),
            r * (std::f64::consts::TAU * u2).sin(),
        );
        (
            lon + dx / (111_320.0 * lat.to_radians().cos()),
            lat + dy / 110_540.0,
        )
    }
}

/// Martin's function source: the PostGIS statements of [`incident_queries`] (`count`, `cells`,
/// `raw`, through the spatial index) as SQL functions and the choice between them that
/// `Db::incidents_tile` makes, for any filter left open.
pub async fn install_peer_function(db: &Db) -> anyhow::Result<()> {
    let q = incident_queries();
    let filter = "integer, integer, integer, text[], timestamptz, timestamptz, text[], text[]";
    let statements = [
        format!(
            "create or replace function gw_bench_count({filter}) returns bigint
             language sql stable parallel safe as $body${}$body$",
            q.count
        ),
        format!(
            "create or replace function gw_bench_cells({filter}, float8) returns bytea
             language sql stable parallel safe as $body${}$body$",
            q.cells
        ),
        format!(
            "create or replace function gw_bench_raw({filter}) returns bytea
             language sql stable parallel safe as $body${}$body$",
            q.raw
        ),
        format!(
            "create or replace function gw_bench_incidents(z integer, x integer, y integer)
             returns bytea language plpgsql stable parallel safe as $body$
             declare
                 width float8 := 2 * 20037508.342789244 / (1::bigint << z);
             begin
                 if z < {RAW_FROM_ZOOM} then
                     return gw_bench_cells(z, x, y, null, null, null, null, null, width / {CELLS_PER_SIDE});
                 end if;
                 if gw_bench_count(z, x, y, null, null, null, null, null) <= {MAX_RAW_FEATURES} then
                     return gw_bench_raw(z, x, y, null, null, null, null, null);
                 end if;
                 return gw_bench_cells(z, x, y, null, null, null, null, null, width / {});
             end $body$",
            2 * CELLS_PER_SIDE
        ),
    ];
    for s in statements {
        sqlx::query(&s)
            .execute(db.pool())
            .await
            .context("creating Martin's function source")?;
    }
    Ok(())
}

fn martin_config(url: &str, port: u16) -> String {
    format!(
        "# written by gridwatch bench tiles\n\
         listen_addresses: '127.0.0.1:{port}'\n\
         postgres:\n  \
           connection_string: '{url}'\n  \
           auto_publish: false\n  \
           functions:\n    \
             incidents:\n      \
               schema: public\n      \
               function: gw_bench_incidents\n      \
               minzoom: 0\n      \
               maxzoom: 22\n"
    )
}

/// Up to `samples` tiles at zoom `z` with incidents in them: the tiles of randomly drawn reports,
/// so busy places come up more often.
async fn tiles_at(db: &Db, z: u8, samples: usize) -> anyhow::Result<Vec<TileId>> {
    let points: Vec<(f64, f64)> =
        sqlx::query_as("select st_x(geom), st_y(geom) from report order by random() limit $1")
            .bind((samples * 20) as i64)
            .fetch_all(db.pool())
            .await?;
    let mut seen = std::collections::HashSet::new();
    let mut tiles: Vec<TileId> = points
        .into_iter()
        .map(|(lon, lat)| TileId::containing(z, lon, lat))
        .filter(|t| seen.insert(*t))
        .collect();
    tiles.truncate(samples);
    anyhow::ensure!(!tiles.is_empty(), "no tiles at z{z}");
    Ok(tiles)
}

struct Fetched {
    ms: f64,
    mvt: Vec<u8>,
    gzip_len: usize,
}

fn fetch(conn: &mut BareHttp, path: &str) -> anyhow::Result<Fetched> {
    let started = Instant::now();
    let response = conn.get(path)?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(
        response.status == 200 || response.status == 204,
        "GET {path}: HTTP {}",
        response.status
    );
    let gzip_len = response.body.len();
    let mvt = if response.gzipped {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&response.body[..]).read_to_end(&mut out)?;
        out
    } else {
        response.body
    };
    Ok(Fetched { ms, gzip_len, mvt })
}

/// A bare HTTP/1.1 client on one kept-alive connection to one server: a request is one write and
/// a response is read to its length. A general client's pool, header maps and body streams cost
/// about 0.09 ms a request on this machine, as much as a whole warm tile, and would hide the servers'
/// difference behind the client's own time; both servers are asked through this same client.
pub struct BareHttp {
    addr: std::net::SocketAddr,
    /// header lines sent with every request, each ending in CRLF
    headers: String,
    conn: Option<std::io::BufReader<std::net::TcpStream>>,
}

pub struct BareResponse {
    pub status: u16,
    pub gzipped: bool,
    pub body: Vec<u8>,
}

impl BareHttp {
    pub fn new(addr: std::net::SocketAddr, headers: &[(&str, &str)]) -> BareHttp {
        let headers = headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}\r\n"))
            .collect();
        BareHttp {
            addr,
            headers,
            conn: None,
        }
    }

    /// GET `path` asking for gzip; once more on a new connection if the kept one was closed.
    pub fn get(&mut self, path: &str) -> anyhow::Result<BareResponse> {
        let reused = self.conn.is_some();
        match self.exchange(path) {
            Ok(r) => Ok(r),
            Err(_) if reused => {
                self.conn = None;
                self.exchange(path)
            }
            Err(e) => Err(e),
        }
        .with_context(|| format!("GET http://{}{path}", self.addr))
    }

    fn exchange(&mut self, path: &str) -> anyhow::Result<BareResponse> {
        use std::io::{BufRead, Write};
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let stream = std::net::TcpStream::connect(self.addr)?;
                stream.set_nodelay(true)?;
                self.conn
                    .insert(std::io::BufReader::with_capacity(1 << 16, stream))
            }
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: {}\r\naccept-encoding: gzip\r\n{}\r\n",
            self.addr, self.headers
        );
        conn.get_mut().write_all(request.as_bytes())?;
        let mut line = String::new();
        anyhow::ensure!(conn.read_line(&mut line)? > 0, "the connection was closed");
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("not an HTTP status line: {line:?}"))?;
        let (mut length, mut chunked, mut gzipped, mut close) = (None, false, false, false);
        loop {
            line.clear();
            anyhow::ensure!(
                conn.read_line(&mut line)? > 0,
                "the response ended in its headers"
            );
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                anyhow::bail!("not a header line: {header:?}");
            };
            let value = value.trim().to_ascii_lowercase();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = Some(value.parse::<usize>()?),
                "transfer-encoding" => chunked = value.contains("chunked"),
                "content-encoding" => gzipped = value == "gzip",
                "connection" => close = value == "close",
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                conn.read_line(&mut line)?;
                let size = line.trim_end().split(';').next().unwrap_or("");
                let size = usize::from_str_radix(size, 16)
                    .with_context(|| format!("not a chunk size: {line:?}"))?;
                if size == 0 {
                    // trailers, then the blank line
                    loop {
                        line.clear();
                        conn.read_line(&mut line)?;
                        if line.trim_end().is_empty() {
                            break;
                        }
                    }
                    break;
                }
                let start = body.len();
                body.resize(start + size, 0);
                conn.read_exact(&mut body[start..])?;
                let mut crlf = [0u8; 2];
                conn.read_exact(&mut crlf)?;
            }
        } else if let Some(length) = length {
            body.resize(length, 0);
            conn.read_exact(&mut body)?;
        } else if status != 204 && status != 304 {
            conn.read_to_end(&mut body)?;
            close = true;
        }
        if close {
            self.conn = None;
        }
        Ok(BareResponse {
            status,
            gzipped,
            body,
        })
    }
}

/// The features of an MVT: in each layer (field 3 of the tile), its features are field 2. Read
/// from the protobuf wire format directly.
fn count_features(mvt: &[u8]) -> usize {
    fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*i)?;
            *i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn fields(b: &[u8], mut visit: impl FnMut(u64, &[u8])) {
        let mut i = 0;
        while i < b.len() {
            let Some(key) = varint(b, &mut i) else { return };
            match key & 7 {
                0 => {
                    if varint(b, &mut i).is_none() {
                        return;
                    }
                }
                1 => i += 8,
                5 => i += 4,
                2 => {
                    let Some(len) = varint(b, &mut i) else { return };
                    let end = (i + len as usize).min(b.len());
                    visit(key >> 3, &b[i..end]);
                    i = end;
                }
                _ => return,
            }
        }
    }
    let mut n = 0;
    fields(mvt, |tag, layer| {
        if tag == 3 {
            fields(layer, |t, _| n += usize::from(t == 2));
        }
    });
    n
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn line(what: &str, ours: &mut [f64], martin: &mut [f64]) {
    ours.sort_by(f64::total_cmp);
    martin.sort_by(f64::total_cmp);
    let (o50, o99) = (percentile(ours, 0.5), percentile(ours, 0.99));
    let (m50, m99) = (percentile(martin, 0.5), percentile(martin, 0.99));
    println!(
        "    {what} ({} requests each): gridwatch p50 {o50:.2} ms p99 {o99:.2} ms | Martin p50 {m50:.2} ms p99 {m99:.2} ms | Martin/gridwatch p50 {:.2}×, p99 {:.2}×",
        ours.len(),
        m50 / o50,
        m99 / o99
    );
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A server process of the benchmark, killed when dropped.
struct Server {
    name: &'static str,
    child: Child,
}

impl Server {
    async fn start(
        name: &'static str,
        cmd: &mut Command,
        health: String,
    ) -> anyhow::Result<Server> {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let mut server = Server { name, child };
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = client.get(&health).send().await {
                if r.status().is_success() {
                    return Ok(server);
                }
            }
            if let Some(status) = server.child.try_wait()? {
                anyhow::bail!("{name} exited at start: {status}");
            }
            anyhow::ensure!(
                started.elapsed().as_secs() < 120,
                "{name} did not answer {health} within 120 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// (VmHWM, VmRSS) in kB.
    fn memory(&self) -> anyhow::Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok((field("VmHWM:"), field("VmRSS:")))
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
    }

    #[test]
    fn the_bare_client_reads_sized_chunked_and_closed_responses_and_reconnects() {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Answers on the first connection: a sized gzip body, a chunked one, then one that ends
        // at close; then on a second connection a 204.
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let answers: [&[&[u8]]; 2] = [
                &[
                    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Encoding: gzip\r\n\r\nabc",
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nde\r\n1\r\nf\r\n0\r\nT: 1\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
                ],
                &[b"HTTP/1.1 204 No Content\r\n\r\n"],
            ];
            for replies in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                for reply in replies {
                    let mut request = String::new();
                    loop {
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        request.push_str(&line);
                        if line == "\r\n" {
                            break;
                        }
                    }
                    seen.push(request);
                    (&stream).write_all(reply).unwrap();
                }
            }
            seen
        });
        let mut http = BareHttp::new(addr, &[("authorization", "Bearer t")]);
        let a = http.get("/a").unwrap();
        assert_eq!((a.status, a.gzipped, &a.body[..]), (200, true, &b"abc"[..]));
        let b = http.get("/b").unwrap();
        assert_eq!(
            (b.status, b.gzipped, &b.body[..]),
            (200, false, &b"def"[..])
        );
        let c = http.get("/c").unwrap();
        assert_eq!(&c.body[..], b"until the end");
        let d = http.get("/d").unwrap();
        assert_eq!((d.status, d.body.len()), (204, 0));
        let seen = server.join().unwrap();
        assert_eq!(seen.len(), 4);
        assert!(seen[0].starts_with("GET /a HTTP/1.1\r\n"), "{}", seen[0]);
        assert!(seen[0].contains("accept-encoding: gzip\r\n"));
        assert!(
            seen[3].contains("authorization: Bearer t\r\n"),
            "{}",
            seen[3]
        );
    }

    #[test]
    fn features_are_counted_in_an_mvt() {
        // layer (3) { name (1) "a", feature (2) {}, feature (2) { id (1) 7 } }
        let layer = [0x0a, 0x01, b'a', 0x12, 0x00, 0x12, 0x02, 0x08, 0x07];
        let mut mvt = vec![0x1a, layer.len() as u8];
        mvt.extend_from_slice(&layer);
        assert_eq!(count_features(&mvt), 2);
        assert_eq!(count_features(&[]), 0);
    }
}
