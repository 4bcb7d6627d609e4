//! Storage: the only layer that speaks SQL. PostgreSQL + PostGIS is the store of record;
//! geometry crosses the boundary as WKB, never as concatenated text.

pub mod accounts;
pub mod bulk;
pub mod cluster;
pub mod dashboard;
pub mod dispatch;
pub mod health;
pub mod open311;
pub mod photos;
pub mod redraw;
pub mod regions;
pub mod reports;
pub mod sketches;
pub mod tiles;

use geo::{Geometry, MultiPolygon};
use geozero::wkb::{FromWkb, WkbDialect};
use geozero::{CoordDimensions, ToWkb};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use std::sync::Arc;
use std::time::Duration;

/// The longest a request waits for a pooled connection. Past it the request is answered 503
/// (with Retry-After): under an overload or a database outage, callers are told, not held.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error while {1}: {0}")]
    Db(#[source] sqlx::Error, &'static str),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("bad geometry from the database: {0}")]
    Geometry(String),
    /// data that gridwatch itself derived does not agree with the database
    #[error("inconsistent data: {0}")]
    Inconsistent(String),
}

pub type Result<T> = std::result::Result<T, StorageError>;

impl StorageError {
    /// The error is a violation of the unique index or constraint `name`.
    pub fn is_unique_violation(&self, name: &str) -> bool {
        match self {
            StorageError::Db(sqlx::Error::Database(d), _) => {
                d.code().as_deref() == Some("23505") && d.constraint() == Some(name)
            }
            _ => false,
        }
    }

    /// The database has no room to write (its disk is full): nothing was saved, and the
    /// request may succeed once space is freed.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StorageError::Db(sqlx::Error::Database(d), _)
            if d.code().is_some_and(|c| c == "53100"))
    }

    /// The database could not be reached or is going away (no connection in time, a broken
    /// connection, a server shutting down or starting up, too many connections): the request
    /// may succeed if tried again later, and says nothing about the data.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StorageError::Db(e, _) => is_unavailable(e),
            _ => false,
        }
    }
}

/// See [`StorageError::is_unavailable`].
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            // 08: connection exception; 57P01-03: admin or crash shutdown, cannot connect now;
            // 53300: too many connections
            c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// Attaches what we were doing to a sqlx error, in the manner of `map_err(db("loading x"))`.
pub(crate) fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> StorageError {
    move |e| StorageError::Db(e, context)
}

/// The database handle shared by the service.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
    health: Arc<health::DbHealth>,
}

impl Db {
    /// Connects, creating the database first when it does not exist (the embedded cluster
    /// starts with only `postgres`), and runs the migrations.
    pub async fn connect(options: PgConnectOptions) -> Result<Db> {
        // Bulk loads legitimately take seconds; only much slower statements deserve a warning.
        //
        // No parallel workers: the service answers many requests at once on few cores, where a
        // worker per query competes with the other requests. Alone it did not help either: a
        // z16 tile's custom plan with a worker took 29–35 ms, the plan without one 13–18 ms
        // (psql, 1M reports; README "Tiles").
        let options = options
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(10))
            .options([("max_parallel_workers_per_gather", "0")]);
        ensure_database(&options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(db("connecting"))?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Db {
            pool,
            health: Arc::default(),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// How this handle connects, e.g. to reach another database on the same server.
    pub fn options(&self) -> PgConnectOptions {
        (*self.pool.connect_options()).clone()
    }

    /// Whether the database is known to be down (see [`health`]).
    pub fn health(&self) -> &health::DbHealth {
        &self.health
    }

    pub async fn meta(&self, key: &str) -> Result<Option<String>> {
        sqlx::query_scalar("select value from meta where key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading meta"))
    }
}

impl Db {
    pub async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "insert into meta (key, value) values ($1, $2)
             on conflict (key) do update set value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(db("writing meta"))?;
        Ok(())
    }

    /// The `meta` value under `key`, set to `fresh` first if there is none: a secret made once
    /// and shared by every process on this database (and kept by its backups).
    pub async fn meta_or_insert(&self, key: &str, fresh: &str) -> Result<String> {
        let made: Option<String> = sqlx::query_scalar(
            "with made as (
                 insert into meta (key, value) values ($1, $2)
                 on conflict (key) do nothing returning value)
             select value from made union all select value from meta where key = $1",
        )
        .bind(key)
        .bind(fresh)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading meta"))?;
        match made {
            Some(value) => Ok(value),
            // another process inserted it after this statement's snapshot was taken
            None => self.meta(key).await?.ok_or_else(|| {
                StorageError::Inconsistent(format!("meta {key} vanished while it was being made"))
            }),
        }
    }
}

/// Sets a one-off `meta` marker inside a bulk load's transaction; false when it was set already
/// (the load happened), so the load is skipped.
pub(crate) async fn claim_marker(conn: &mut sqlx::PgConnection, marker: &str) -> Result<bool> {
    let n = sqlx::query(
        "insert into meta (key, value) values ($1, now()::text) on conflict do nothing",
    )
    .bind(marker)
    .execute(conn)
    .await
    .map_err(db("setting a load marker"))?
    .rows_affected();
    Ok(n == 1)
}

/// Creates the database `options` names if it does not exist (when the server lets us).
pub async fn ensure_database(options: &PgConnectOptions) -> Result<()> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    if name == "postgres" {
        return Ok(());
    }
    let admin = options.clone().database("postgres");
    let Ok(mut conn) = admin.connect().await else {
        // No access to the maintenance database (a managed server): assume the target exists.
        return Ok(());
    };
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .map_err(db("checking the database exists"))?;
    if !exists {
        let sql = format!("create database \"{}\"", name.replace('"', "\"\""));
        if let Err(e) = sqlx::query(&sql).execute(&mut conn).await {
            // Another process may have created it in the meantime.
            let raced = e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "42P04");
            if !raced {
                return Err(StorageError::Db(e, "creating the database"));
            }
        }
    }
    Ok(())
}

/// Plain WKB (no SRID) of a geometry, for `ST_GeomFromWKB($1, 4326)`.
pub(crate) fn to_wkb(g: &Geometry<f64>) -> Vec<u8> {
    // Encoding a finite in-memory geometry into a Vec cannot fail.
    g.to_wkb(CoordDimensions::xy()).unwrap_or_default()
}

/// Decodes `ST_AsBinary(geom)` of a (multi)polygon into a `MultiPolygon`.
pub(crate) fn multipolygon_from_wkb(bytes: &[u8]) -> Result<MultiPolygon<f64>> {
    let mut cursor = std::io::Cursor::new(bytes);
    match Geometry::<f64>::from_wkb(&mut cursor, WkbDialect::Wkb) {
        Ok(Geometry::MultiPolygon(mp)) => Ok(mp),
        Ok(Geometry::Polygon(p)) => Ok(MultiPolygon(vec![p])),
        Ok(other) => Err(StorageError::Geometry(format!(
            "expected a polygon, got {other:?}"
        ))),
        Err(e) => Err(StorageError::Geometry(e.to_string())),
    }
}
