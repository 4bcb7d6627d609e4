//! The embedded default: a private PostgreSQL cluster that gridwatch creates, starts and stops
//! itself when no `DATABASE_URL` is given, using the machine's installed PostgreSQL binaries.
//!
//! The cluster listens on a Unix socket only (no TCP port to collide with). PostgreSQL refuses
//! to run as root, so when gridwatch runs as root the cluster is owned by and run as the
//! `postgres` user, in a directory that user can reach. A postmaster left behind by a killed
//! gridwatch is recognised by its lock file and shut down before a fresh start.

use sqlx::postgres::PgConnectOptions;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or on PATH; run scripts/setup or set DATABASE_URL")]
    BinariesNotFound,
    #[error("PostgreSQL refuses to run as root and there is no 'postgres' user to run it as; create one or set DATABASE_URL")]
    NoPostgresUser,
    #[error("I/O error while {1}: {0}")]
    Io(#[source] io::Error, String),
    #[error("{command} failed ({status}); see {log}")]
    CommandFailed {
        command: String,
        status: String,
        log: String,
    },
}

type Result<T> = std::result::Result<T, ClusterError>;

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ClusterError {
    let what = what.into();
    move |e| ClusterError::Io(e, what)
}

/// The Unix user the cluster runs as, when it differs from the current one.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

/// A private PostgreSQL cluster in a data directory.
#[derive(Debug)]
pub struct ManagedCluster {
    bin_dir: PathBuf,
    pgdata: PathBuf,
    socket_dir: PathBuf,
    log_file: PathBuf,
    /// folder holding pgdata, the log and the owner file
    base: PathBuf,
    run_as: Option<RunAs>,
    /// file naming the gridwatch process that started the cluster
    owner_file: PathBuf,
    /// false when attached to a cluster another live gridwatch process runs: never stopped by us
    owned: bool,
}

const PORT: u16 = 5432;
/// sun_path is 108 bytes on Linux, including the socket file name and the NUL.
const MAX_SOCKET_DIR_LEN: usize = 90;

impl ManagedCluster {
    /// Creates (first run) and starts the cluster for `data_dir`, recovering one left running
    /// by a killed process. Blocking; call from start-up or `spawn_blocking`.
    pub fn start(data_dir: &Path) -> Result<Self> {
        let mut cluster = Self::at(data_dir)?;
        if cluster.live_owner().is_some() && cluster.postmaster_running() {
            // Another gridwatch (say, `serve` while we run `regions import`) runs it: share it.
            tracing::info!("using the PostgreSQL cluster of the running gridwatch");
            cluster.owned = false;
            return Ok(cluster);
        }
        cluster.prepare_dirs()?;
        if !cluster.pgdata.join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        cluster.write_settings()?;
        cluster.recover_leftover()?;
        cluster.run_pg_ctl(&[
            "start",
            "-w",
            "-t",
            "120",
            "-l",
            &cluster.log_file.to_string_lossy(),
        ])?;
        fs::write(&cluster.owner_file, std::process::id().to_string())
            .map_err(io_err("writing owner.pid"))?;
        tracing::info!(pgdata = %cluster.pgdata.display(), "embedded PostgreSQL started");
        Ok(cluster)
    }

    /// Stops a cluster left running in `data_dir` (by a killed process or a test run), unless a
    /// live gridwatch process owns it. Returns whether one was stopped.
    pub fn stop_leftover(data_dir: &Path) -> Result<bool> {
        if !data_dir.exists() {
            return Ok(false);
        }
        let cluster = Self::at(data_dir)?;
        if cluster.live_owner().is_some() || !cluster.postmaster_running() {
            return Ok(false);
        }
        cluster.stop()?;
        Ok(true)
    }

    /// The cluster's paths for `data_dir`, without touching anything.
    fn at(data_dir: &Path) -> Result<Self> {
        let bin_dir = find_bin_dir().ok_or(ClusterError::BinariesNotFound)?;
        fs::create_dir_all(data_dir).map_err(io_err(format!("creating {}", data_dir.display())))?;
        let data_dir = data_dir
            .canonicalize()
            .map_err(io_err(format!("resolving {}", data_dir.display())))?;
        let run_as = if nix::unistd::geteuid().is_root() {
            let user = nix::unistd::User::from_name("postgres")
                .ok()
                .flatten()
                .ok_or(ClusterError::NoPostgresUser)?;
            Some(RunAs {
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
            })
        } else {
            None
        };
        // The postgres user must be able to reach the cluster directory; under a root-only
        // path (such as /root) the cluster lives in a directory derived from the data dir.
        let base = match run_as {
            Some(u) if !reachable_by(&data_dir, u) => {
                let alt = PathBuf::from("/var/lib/gridwatch").join(path_hash(&data_dir));
                tracing::info!(
                    "{} is not reachable by the postgres user; keeping the cluster in {}",
                    data_dir.display(),
                    alt.display()
                );
                alt
            }
            _ => data_dir.clone(),
        };
        let pgdata = base.join("postgres");
        let socket_dir = if base.join("run").as_os_str().len() <= MAX_SOCKET_DIR_LEN {
            base.join("run")
        } else {
            std::env::temp_dir().join(format!("gridwatch-{}", path_hash(&data_dir)))
        };
        Ok(ManagedCluster {
            bin_dir,
            log_file: base.join("postgres.log"),
            owner_file: base.join("owner.pid"),
            base,
            pgdata,
            socket_dir,
            run_as,
            owned: true,
        })
    }

    /// Connection options for database `db` in this cluster.
    pub fn connect_options(&self, db: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.socket_dir)
            .port(PORT)
            .username("postgres")
            .database(db)
    }

    /// A `postgres://` URL for tools such as psql.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@localhost:{PORT}/{db}?host={}",
            self.socket_dir.display()
        )
    }

    pub fn pgdata(&self) -> &Path {
        &self.pgdata
    }

    /// Fast shutdown: active sessions are ended, committed data is safe. A cluster we only
    /// attached to is left running for its owner.
    pub fn stop(&self) -> Result<()> {
        if !self.owned {
            return Ok(());
        }
        self.run_pg_ctl(&["stop", "-w", "-m", "fast", "-t", "60"])?;
        let _ = fs::remove_file(&self.owner_file);
        tracing::info!("embedded PostgreSQL stopped");
        Ok(())
    }

    /// The pid of a live gridwatch process that started this cluster, if any.
    fn live_owner(&self) -> Option<i32> {
        let pid: i32 = fs::read_to_string(&self.owner_file)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        if pid == std::process::id() as i32 {
            return None;
        }
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .contains("gridwatch")
            .then_some(pid)
    }

    /// True when a postmaster runs on our data directory.
    fn postmaster_running(&self) -> bool {
        let Ok(text) = fs::read_to_string(self.pgdata.join("postmaster.pid")) else {
            return false;
        };
        let pid: Option<i32> = text.lines().next().and_then(|l| l.trim().parse().ok());
        pid.is_some_and(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            cmdline.contains("postgres") && cmdline.contains(&*self.pgdata.to_string_lossy())
        })
    }

    fn prepare_dirs(&self) -> Result<()> {
        for dir in [&self.base, &self.socket_dir] {
            fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
            if let Some(u) = self.run_as {
                chown(dir, u)?;
            }
        }
        if !self.log_file.exists() {
            fs::write(&self.log_file, b"").map_err(io_err("creating the PostgreSQL log"))?;
        }
        if let Some(u) = self.run_as {
            chown(&self.log_file, u)?;
        }
        Ok(())
    }

    fn initdb(&self) -> Result<()> {
        tracing::info!(pgdata = %self.pgdata.display(), "creating the embedded PostgreSQL cluster");
        let mut cmd = Command::new(self.bin_dir.join("initdb"));
        cmd.arg("-D").arg(&self.pgdata).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ]);
        self.run(cmd, "initdb")
    }

    /// Our settings live in an included file rewritten at each start, so that a moved data
    /// directory (socket path) keeps working.
    fn write_settings(&self) -> Result<()> {
        let conf = self.pgdata.join("postgresql.conf");
        let text = fs::read_to_string(&conf).map_err(io_err("reading postgresql.conf"))?;
        if !text.contains("include_if_exists = 'gridwatch.conf'") {
            fs::write(
                &conf,
                format!("{text}\ninclude_if_exists = 'gridwatch.conf'\n"),
            )
            .map_err(io_err("writing postgresql.conf"))?;
        }
        let settings = format!(
            "# written by gridwatch at each start\n\
             listen_addresses = ''\n\
             port = {PORT}\n\
             unix_socket_directories = '{}'\n\
             max_connections = 100\n\
             shared_buffers = '256MB'\n\
             logging_collector = off\n",
            self.socket_dir.display().to_string().replace('\'', "''")
        );
        let path = self.pgdata.join("gridwatch.conf");
        fs::write(&path, settings).map_err(io_err("writing gridwatch.conf"))?;
        if let Some(u) = self.run_as {
            chown(&path, u)?;
        }
        Ok(())
    }

    /// A postmaster still running on this data directory (gridwatch was killed) is shut down;
    /// a stale lock file whose process is gone (or is some other program) is removed.
    fn recover_leftover(&self) -> Result<()> {
        let pid_file = self.pgdata.join("postmaster.pid");
        if !pid_file.exists() {
            return Ok(());
        }
        if self.postmaster_running() {
            tracing::warn!("a PostgreSQL left running by an earlier gridwatch is being restarted");
            self.run_pg_ctl(&["stop", "-w", "-m", "fast", "-t", "60"])?;
        } else {
            tracing::warn!("removing a stale postmaster.pid left by a killed PostgreSQL");
            fs::remove_file(&pid_file).map_err(io_err("removing a stale postmaster.pid"))?;
            let lock = self.socket_dir.join(format!(".s.PGSQL.{PORT}.lock"));
            let _ = fs::remove_file(lock);
        }
        Ok(())
    }

    fn run_pg_ctl(&self, args: &[&str]) -> Result<()> {
        let mut cmd = Command::new(self.bin_dir.join("pg_ctl"));
        cmd.arg("-D").arg(&self.pgdata).args(args);
        self.run(cmd, &format!("pg_ctl {}", args[0]))
    }

    fn run(&self, mut cmd: Command, what: &str) -> Result<()> {
        if let Some(u) = self.run_as {
            cmd.uid(u.uid).gid(u.gid);
            // The current directory may be unreadable for postgres (e.g. /root).
            cmd.current_dir("/");
        }
        let out = cmd.output().map_err(io_err(format!("running {what}")))?;
        if out.status.success() {
            return Ok(());
        }
        let mut msg = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if msg.is_empty() {
            msg = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        }
        tracing::error!("{what}: {msg}");
        Err(ClusterError::CommandFailed {
            command: what.to_owned(),
            status: format!("{}: {}", out.status, msg.lines().last().unwrap_or("")),
            log: self.log_file.display().to_string(),
        })
    }
}

fn chown(path: &Path, u: RunAs) -> Result<()> {
    nix::unistd::chown(
        path,
        Some(nix::unistd::Uid::from_raw(u.uid)),
        Some(nix::unistd::Gid::from_raw(u.gid)),
    )
    .map_err(|e| {
        ClusterError::Io(
            e.into(),
            format!("changing the owner of {}", path.display()),
        )
    })
}

/// True when every ancestor of `dir` can be traversed by user `u`.
fn reachable_by(dir: &Path, u: RunAs) -> bool {
    dir.ancestors().skip(1).all(|a| match fs::metadata(a) {
        Ok(m) => {
            let mode = m.permissions().mode();
            (m.uid() == u.uid && mode & 0o100 != 0)
                || (m.gid() == u.gid && mode & 0o010 != 0)
                || mode & 0o001 != 0
        }
        Err(_) => false,
    })
}

/// A short stable name for a path (FNV-1a), for directories derived from it.
fn path_hash(p: &Path) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in p.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// The PostgreSQL client program `name` (pg_dump, pg_restore) of the same installation the
/// embedded cluster uses; `None` when no PostgreSQL installation is found.
pub fn pg_tool(name: &str) -> Option<PathBuf> {
    let bin = find_bin_dir()?.join(name);
    bin.exists().then_some(bin)
}

/// The PostgreSQL bin directory to use: `GRIDWATCH_PG_BIN`, else the newest Debian-style
/// `/usr/lib/postgresql/N/bin` (preferring one whose PostGIS extension is installed), else PATH.
fn find_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("GRIDWATCH_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort_by_key(|(v, _)| std::cmp::Reverse(*v));
    let with_postgis = versions.iter().find(|(v, _)| {
        Path::new(&format!(
            "/usr/share/postgresql/{v}/extension/postgis.control"
        ))
        .exists()
    });
    if let Some((_, bin)) = with_postgis.or(versions.first()) {
        return Some(bin.clone());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_hash_is_stable_and_distinct() {
        assert_eq!(path_hash(Path::new("/a/b")), path_hash(Path::new("/a/b")));
        assert_ne!(path_hash(Path::new("/a/b")), path_hash(Path::new("/a/c")));
        assert_eq!(path_hash(Path::new("/x")).len(), 16);
    }
}
