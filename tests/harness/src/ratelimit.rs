//! A Redis and the rate-limit service (tools/sluice-ratelimit) as child processes, for the
//! global token limits (envoy/sluice-ratelimit.yaml).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::envoy::free_port;
use crate::paths;

/// Debian's `redis-server` on a free 127.0.0.1 port, no persistence (no RDB, no AOF), its
/// files in a temp folder; stopped when dropped.
pub struct Redis {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

/// `redis-cli -p <port> <args…>` (with `--raw`), its stdout; fails after 10 s.
pub fn redis_cli(port: u16, args: &[&str]) -> crate::Result<String> {
    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--raw"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start redis-cli (make setup installs it): {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("redis-cli {args:?} did not finish within 10 s"));
            }
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("redis-cli: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "redis-cli {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Redis {
    pub fn start() -> crate::Result<Redis> {
        let mut last = String::new();
        for _attempt in 0..4 {
            match Self::try_start() {
                Ok(redis) => return Ok(redis),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn try_start() -> crate::Result<Redis> {
        let dir = tempfile::Builder::new()
            .prefix("sluice-redis-")
            .tempdir()
            .map_err(|e| format!("no temp dir: {e}"))?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.path().join("redis.log"))
            .map_err(|e| format!("cannot create the Redis log: {e}"))?;
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server (make setup installs it): {e}"))?;
        let mut redis = Redis {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = redis.child.try_wait() {
                return Err(format!("redis-server exited ({status}) on port {port}"));
            }
            if redis.cli(&["PING"]).is_ok_and(|o| o.trim() == "PONG") {
                return Ok(redis);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("redis-server on port {port} not ready within 10 s"))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn cli(&self, args: &[&str]) -> crate::Result<String> {
        redis_cli(self.port, args)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tools/sluice-ratelimit on a free port, with the given config (JSON) and Redis.
pub struct RateLimitService {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RateLimitService {
    pub fn start(config_json: &str, redis_url: &str) -> crate::Result<RateLimitService> {
        let dir = tempfile::Builder::new()
            .prefix("sluice-ratelimit-")
            .tempdir()
            .map_err(|e| format!("no temp dir: {e}"))?;
        let config = dir.path().join("limits.json");
        std::fs::write(&config, config_json).map_err(|e| format!("cannot write config: {e}"))?;
        Self::start_config(&config, redis_url, dir)
    }

    fn start_config(
        config: &Path,
        redis_url: &str,
        dir: tempfile::TempDir,
    ) -> crate::Result<RateLimitService> {
        let bin = paths::ratelimit_service();
        let mut command = Command::new(&bin);
        command
            .arg("--config")
            .arg(config)
            .args(["--redis", redis_url, "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null());
        let (child, port) =
            crate::announced::spawn(command, &format!("sluice-ratelimit ({})", bin.display()))?;
        Ok(RateLimitService {
            child,
            port,
            _dir: dir,
        })
    }
}

impl Drop for RateLimitService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
