//! [`PrivateRedis`]: a `redis-server` of a test's own, on a free loopback
//! port, to freeze, kill and restart without disturbing other tests.

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
