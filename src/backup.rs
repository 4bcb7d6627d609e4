//! `gridwatch db backup FILE` and `gridwatch db restore FILE`: the whole database (regions and
//! their versions, reports, cases and their histories, the outbox, accounts, the audit log and
//! the `meta` secrets) in pg_dump's custom format, made by the pg_dump of the same PostgreSQL
//! installation the embedded cluster uses. A backup is written to a temporary name and renamed
//! when complete; a restore goes into an empty database in one transaction, so it is all there or
//! not at all. Photos live on disk (`--photo-dir`) and are copied beside the dump by the operator.

use crate::server::Server;
use crate::storage::cluster::pg_tool;
use anyhow::Context;
use sqlx::{ConnectOptions, Connection};
use std::path::Path;
use std::process::Command;

/// What a backup holds or a restore brought back, counted in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    pub regions: i64,
    pub reports: i64,
    pub cases: i64,
    pub accounts: i64,
}

impl std::fmt::Display for Contents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} regions, {} reports, {} cases, {} accounts",
            self.regions, self.reports, self.cases, self.accounts
        )
    }
}

async fn contents(conn: &mut sqlx::PgConnection) -> anyhow::Result<Contents> {
    let (regions, reports, cases, accounts): (i64, i64, i64, i64) = sqlx::query_as(
        "select (select count(*) from region), (select count(*) from report),
                (select count(*) from dispatch_case), (select count(*) from account)",
    )
    .fetch_one(conn)
    .await
    .context("counting what the database holds (is it a gridwatch database?)")?;
    Ok(Contents {
        regions,
        reports,
        cases,
        accounts,
    })
}

/// A `postgres://` URL for pg_dump and pg_restore.
fn tool_url(database_url: Option<&str>, server: &Server) -> anyhow::Result<String> {
    match (&server.cluster, database_url) {
        (Some(c), _) => Ok(c.url("gridwatch")),
        (None, Some(url)) => Ok(url.to_owned()),
        (None, None) => anyhow::bail!("no database: set DATABASE_URL or --data-dir"),
    }
}

fn tool(name: &str) -> anyhow::Result<std::path::PathBuf> {
    pg_tool(name).with_context(|| {
        format!("{name} was not found: install PostgreSQL's client programs (scripts/setup)")
    })
}

/// Runs a PostgreSQL program; its error output becomes the error.
fn run(mut cmd: Command, what: &str) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Writes a backup of the service's database to `file`, as it is (a backup never migrates
/// what it copies); returns what it holds.
pub async fn backup(
    database_url: Option<&str>,
    data_dir: &Path,
    file: &Path,
) -> anyhow::Result<Contents> {
    let server = Server::start(database_url, data_dir).await?;
    let mut conn = server
        .options
        .connect()
        .await
        .context("connecting to the database to back up")?;
    let held = contents(&mut conn).await?;
    conn.close().await.ok();
    let partial = file.with_extension("partial");
    let mut cmd = Command::new(tool("pg_dump")?);
    cmd.args(["--format=custom", "--no-owner", "--no-privileges", "--file"])
        .arg(&partial)
        .arg(tool_url(database_url, &server)?);
    if let Err(e) = tokio::task::spawn_blocking(move || run(cmd, "pg_dump")).await? {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, file)
        .with_context(|| format!("moving the backup to {}", file.display()))?;
    drop(server);
    Ok(held)
}

/// Restores `file` into the service's database, which must hold no gridwatch data yet; then
/// migrates it to this version. Returns what it holds.
pub async fn restore(
    database_url: Option<&str>,
    data_dir: &Path,
    file: &Path,
) -> anyhow::Result<Contents> {
    anyhow::ensure!(file.is_file(), "no backup file {}", file.display());
    let server = Server::start(database_url, data_dir).await?;
    crate::storage::ensure_database(&server.options).await?;
    let mut conn = server
        .options
        .connect()
        .await
        .context("connecting to the database to restore into")?;
    let used: bool = sqlx::query_scalar(
        "select to_regclass('public._sqlx_migrations') is not null
             or to_regclass('public.report') is not null",
    )
    .fetch_one(&mut conn)
    .await
    .context("checking the database is empty")?;
    conn.close().await.ok();
    let name = server
        .options
        .get_database()
        .unwrap_or("gridwatch")
        .to_owned();
    anyhow::ensure!(
        !used,
        "the database {name:?} already holds gridwatch data; restore into an empty one \
         (another DATABASE_URL, or a new --data-dir) — nothing was changed"
    );
    let url = tool_url(database_url, &server)?;
    let mut cmd = Command::new(tool("pg_restore")?);
    cmd.args([
        "--single-transaction",
        "--exit-on-error",
        "--no-owner",
        "--no-privileges",
        "--dbname",
    ])
    .arg(&url)
    .arg(file);
    tokio::task::spawn_blocking(move || run(cmd, "pg_restore"))
        .await?
        .context("the backup was not restored; the database is as it was")?;
    // Migrations newer than the backup run now.
    let db = crate::storage::Db::connect(server.options.clone()).await?;
    let mut conn = db
        .pool()
        .acquire()
        .await
        .context("reading the restored database")?;
    let held = contents(&mut conn).await;
    drop(conn);
    db.pool().close().await;
    drop(server);
    held
}
