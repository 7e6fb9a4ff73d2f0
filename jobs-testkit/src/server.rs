//! [`PrivateRedis`] and [`PrivatePostgres`]: a `redis-server` or a
//! PostgreSQL server of a test's own, on a free loopback port, to freeze,
//! kill and restart without disturbing other tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{eventually, unique_name};

/// A `redis-server` on a free loopback port with an append-only file
/// fsynced on every write, so that it can be frozen (`SIGSTOP`), killed and
/// restarted on the same data. Killed, and its files removed, when dropped.
pub struct PrivateRedis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts one and waits until it answers `PING`. `None` (the calling
    /// test skips, saying so) without a `redis-server` on `PATH`; with
    /// `JOBS_REQUIRE_REDIS` set, that fails the test instead.
    pub async fn start() -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            assert!(
                std::env::var_os("JOBS_REQUIRE_REDIS").is_none(),
                "JOBS_REQUIRE_REDIS is set but there is no redis-server on PATH"
            );
            eprintln!("skipped: no redis-server on PATH");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free loopback port")
            .local_addr()
            .expect("its address")
            .port();
        let dir = std::env::temp_dir().join(unique_name("jobs-private-redis"));
        std::fs::create_dir_all(&dir).expect("a data directory");
        let mut redis = PrivateRedis {
            port,
            dir,
            child: None,
        };
        redis.up().await;
        Some(redis)
    }

    /// Its URL, `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server (again, after [`kill`](Self::kill)) on the same
    /// port and data, and waits until it answers `PING` (not while it is
    /// still loading its data).
    pub async fn up(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "yes"])
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        eventually("redis-server answers", Duration::from_secs(10), || {
            let addr = addr.clone();
            async move { pong(&addr).await }
        })
        .await;
    }

    /// Sends `signal` (e.g. `-STOP`, `-CONT`) to the server.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Kills the server (`SIGKILL`) and waits for it to end.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill redis-server");
            child.wait().expect("wait for redis-server");
        }
    }
}

/// Whether a Redis at `addr` answers `PING` with `PONG`.
async fn pong(addr: &str) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    if stream.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), stream.read(&mut reply)).await,
        Ok(Ok(n)) if reply[..n].starts_with(b"+PONG")
    )
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A frozen server does not die of SIGKILL until it runs again.
            self.signal("-CONT");
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL server of a test's own: `initdb` and `pg_ctl` on a
/// temporary data directory, listening on a free loopback port only (and a
/// Unix socket in that directory), with `fsync` left on, so that an
/// immediate shutdown ([`stop_immediate`](Self::stop_immediate), a crash
/// as far as the data is concerned) loses nothing that was committed.
/// Started again on the same data and port with [`up`](Self::up). Stopped
/// (by its pid, if `pg_ctl` cannot) and its files removed when dropped.
///
/// When the test runs as root, the server's commands run as the user
/// `postgres` (`runuser -u postgres --`), since `initdb` refuses root.
pub struct PrivatePostgres {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    pid: Option<u32>,
}

impl PrivatePostgres {
    /// Makes a cluster and starts it; waits until it accepts connections.
    /// `None` (the calling test skips, saying so) without
    /// `/usr/lib/postgresql/*/bin/initdb`; with `JOBS_REQUIRE_POSTGRES` set,
    /// that fails the test instead.
    pub async fn start() -> Option<Self> {
        let Some(bin) = postgres_bin() else {
            assert!(
                std::env::var_os("JOBS_REQUIRE_POSTGRES").is_none(),
                "JOBS_REQUIRE_POSTGRES is set but there is no /usr/lib/postgresql/*/bin/initdb"
            );
            eprintln!("skipped: no /usr/lib/postgresql/*/bin/initdb");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free loopback port")
            .local_addr()
            .expect("its address")
            .port();
        let dir = std::env::temp_dir().join(unique_name("jobs-private-pg"));
        std::fs::create_dir_all(&dir).expect("a directory for the cluster");
        let as_postgres = is_root();
        let mut pg = PrivatePostgres {
            port,
            dir,
            bin,
            as_postgres,
            pid: None,
        };
        if as_postgres {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(&pg.dir)
                .status()
                .expect("run chown");
            assert!(status.success(), "chown postgres: {}", pg.dir.display());
        }
        let data = pg.data();
        let log = pg.dir.join("initdb.log");
        let mut initdb = pg.command("initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "--no-sync"]);
        let output = blocking(move || initdb.output().expect("run initdb")).await;
        if !output.status.success() {
            let _ = std::fs::write(&log, &output.stderr);
            panic!("initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        pg.up().await;
        Some(pg)
    }

    /// Its URL, `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A command of the server's `bin` directory, run as `postgres` when
    /// this process is root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        command.stdin(Stdio::null()).stdout(Stdio::null());
        command
    }

    /// Starts the server (again, after
    /// [`stop_immediate`](Self::stop_immediate)) on the same port and data,
    /// and waits until it accepts connections (after crash recovery, if it
    /// went down without a checkpoint).
    pub async fn up(&mut self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let mut start = self.command("pg_ctl");
        start
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]);
        let status = blocking(move || start.status().expect("run pg_ctl start")).await;
        if !status.success() {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            panic!("pg_ctl start failed:\n{log}");
        }
        let pid = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next()?.trim().parse().ok());
        self.pid = pid;
        let addr = format!("127.0.0.1:{}", self.port);
        eventually(
            "postgres accepts connections",
            Duration::from_secs(30),
            || {
                let addr = addr.clone();
                async move { tokio::net::TcpStream::connect(&addr).await.is_ok() }
            },
        )
        .await;
    }

    /// Immediate shutdown (`pg_ctl -m immediate stop`): every process of the
    /// server ends at once, without a checkpoint, as in a crash; what was
    /// committed is in the WAL and comes back at the next
    /// [`up`](Self::up). Waits until it is down.
    pub async fn stop_immediate(&mut self) {
        if self.pid.is_none() {
            return;
        }
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "-t", "30", "stop"]);
        let status = blocking(move || stop.status().expect("run pg_ctl stop")).await;
        assert!(status.success(), "pg_ctl -m immediate stop failed");
        self.pid = None;
    }
}

/// The `bin` directory of the newest PostgreSQL under `/usr/lib/postgresql`
/// that has `initdb`.
fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// Whether this process runs as root (`id -u` is 0).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Runs a blocking command off the async worker threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("the blocking command panicked")
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let stopped = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "-t", "10", "stop"])
                .status()
                .is_ok_and(|s| s.success());
            if !stopped {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
