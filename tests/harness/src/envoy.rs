//! A real Envoy as a child process.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{paths, render};

pub struct Envoy {
    child: Child,
    pub port: u16,
    pub admin_port: u16,
    /// From process start until the admin API said LIVE.
    pub ready_after: Duration,
    /// Holds the rendered config (and the log, unless it was put elsewhere) until dropped.
    _dir: tempfile::TempDir,
    log: PathBuf,
}

/// A free 127.0.0.1 port (the OS picks it; someone else may take it before we bind, so
/// [`Envoy::start_config`] retries with new ports when Envoy cannot bind).
pub fn free_port() -> crate::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// The variables every config template in `envoy/` may use.
pub fn template_vars(port: u16, admin_port: u16, mock_port: u16) -> BTreeMap<&'static str, String> {
    let mut vars = BTreeMap::new();
    vars.insert("SLUICE_PORT", port.to_string());
    vars.insert("SLUICE_ADMIN_PORT", admin_port.to_string());
    vars.insert("MOCK_PORT", mock_port.to_string());
    vars.insert("WASM_DIR", paths::wasm_dir().display().to_string());
    vars.insert("ACCESS_LOG", "/dev/stdout".to_owned());
    vars
}

/// Reads a template from the repo and renders it, with plugin config overrides.
pub fn render_template(
    template: &str,
    vars: &BTreeMap<&str, String>,
    plugin_configs: &BTreeMap<String, String>,
) -> crate::Result<String> {
    let path = paths::repo().join(template);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut config = render::render(&text, vars)?;
    for (plugin, json) in plugin_configs {
        config = render::set_plugin_config(&config, plugin, json)?;
    }
    Ok(config)
}

impl Envoy {
    /// Starts Envoy on a template from `envoy/`, its upstream the mock on `mock_port`.
    pub fn start_template(
        template: &str,
        mock_port: u16,
        plugin_configs: &BTreeMap<String, String>,
    ) -> crate::Result<Envoy> {
        Self::start_template_env(template, mock_port, plugin_configs, &[])
    }

    /// Same, with extra environment variables for the Envoy process.
    pub fn start_template_env(
        template: &str,
        mock_port: u16,
        plugin_configs: &BTreeMap<String, String>,
        env: &[(String, String)],
    ) -> crate::Result<Envoy> {
        Self::start_template_with(template, mock_port, plugin_configs, env, &BTreeMap::new())
    }

    /// Same, with extra template variables.
    pub fn start_template_with(
        template: &str,
        mock_port: u16,
        plugin_configs: &BTreeMap<String, String>,
        env: &[(String, String)],
        extra_vars: &BTreeMap<&'static str, String>,
    ) -> crate::Result<Envoy> {
        let render = |port, admin| {
            let mut vars = template_vars(port, admin, mock_port);
            vars.extend(extra_vars.iter().map(|(k, v)| (*k, v.clone())));
            render_template(template, &vars, plugin_configs)
        };
        Self::start_config_env(render, env)
    }

    /// Starts Envoy on the config `make_config(listener_port, admin_port)` returns, and waits
    /// until the admin API says it is live.
    pub fn start_config(
        make_config: impl Fn(u16, u16) -> crate::Result<String>,
    ) -> crate::Result<Envoy> {
        Self::start_config_env(make_config, &[])
    }

    pub fn start_config_env(
        make_config: impl Fn(u16, u16) -> crate::Result<String>,
        env: &[(String, String)],
    ) -> crate::Result<Envoy> {
        let mut last_err = String::new();
        for _attempt in 0..4 {
            let (port, admin_port) = (free_port()?, free_port()?);
            let config = make_config(port, admin_port)?;
            match Self::try_start(&config, port, admin_port, env, None) {
                Ok(envoy) => return Ok(envoy),
                Err(e) if e.contains("ddress already in use") => last_err = e,
                Err(e) => return Err(e),
            }
        }
        Err(last_err)
    }

    /// Starts Envoy on a rendered config whose ports are already fixed (e.g. `make run`'s).
    pub fn start_fixed(config: &str, port: u16, admin_port: u16) -> crate::Result<Envoy> {
        Self::try_start(config, port, admin_port, &[], None)
    }

    /// Same, with Envoy's log written to `log` (created or emptied) instead of the temp folder,
    /// so that it outlives this value.
    pub fn start_fixed_with_log(
        config: &str,
        port: u16,
        admin_port: u16,
        log: &Path,
    ) -> crate::Result<Envoy> {
        Self::try_start(config, port, admin_port, &[], Some(log))
    }

    fn try_start(
        config: &str,
        port: u16,
        admin_port: u16,
        env: &[(String, String)],
        log: Option<&Path>,
    ) -> crate::Result<Envoy> {
        let dir = tempfile::Builder::new()
            .prefix("sluice-envoy-")
            .tempdir()
            .map_err(|e| format!("no temp dir: {e}"))?;
        let config_path = dir.path().join("envoy.yaml");
        std::fs::write(&config_path, config).map_err(|e| format!("cannot write config: {e}"))?;
        // Envoy logs to stderr unbuffered (a --log-path file is flushed only every few seconds).
        let log = log.map_or_else(|| dir.path().join("envoy.log"), Path::to_path_buf);
        let log_file = std::fs::File::create(&log)
            .map_err(|e| format!("cannot create log file {}: {e}", log.display()))?;
        let started = Instant::now();
        let child = Command::new(paths::envoy())
            .arg("-c")
            .arg(&config_path)
            .args(["--concurrency", "2", "--use-dynamic-base-id"])
            // Access logs reach their file within 100 ms (the default is 10 s).
            .args(["--file-flush-interval-msec", "100"])
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start Envoy {} (run `make setup`): {e}",
                    paths::envoy().display()
                )
            })?;
        let mut envoy = Envoy {
            child,
            port,
            admin_port,
            ready_after: Duration::ZERO,
            _dir: dir,
            log,
        };
        envoy.wait_ready(Duration::from_secs(60))?;
        envoy.ready_after = started.elapsed();
        Ok(envoy)
    }

    fn wait_ready(&mut self, limit: Duration) -> crate::Result<()> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "Envoy exited ({status}) before ready:\n{}",
                    self.log_tail(40)
                ));
            }
            if let Ok(resp) = crate::http::get(&self.admin_url("/ready")) {
                if resp.status == 200 && resp.text().trim() == "LIVE" {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "Envoy not ready after {limit:?}:\n{}",
            self.log_tail(40)
        ))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.admin_port, path)
    }

    pub fn log_path(&self) -> PathBuf {
        self.log.clone()
    }

    /// Stops Envoy the clean way (SIGTERM: it drains and flushes its access logs), or kills it
    /// when it has not exited within `grace`. Dropping the value only kills it.
    pub fn stop(&mut self, grace: Duration) {
        let asked = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + grace;
        while asked && Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `/stats/prometheus` text.
    pub fn prometheus(&self) -> crate::Result<String> {
        Ok(crate::http::get(&self.admin_url("/stats/prometheus"))?.text())
    }

    /// The value of the first Prometheus line starting with `prefix` (name and labels).
    pub fn metric(&self, prefix: &str) -> Option<f64> {
        self.prometheus()
            .ok()?
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// A metric once it reaches `want` (filters send counters on their 1 s tick, histograms
    /// reach Prometheus on Envoy's 5 s stats flush), or what it was after 15 s.
    pub fn metric_reaching(&self, prefix: &str, want: f64) -> Option<f64> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let value = self.metric(prefix);
            if value.is_some_and(|v| v >= want) || Instant::now() > deadline {
                return value;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Resident memory of the Envoy process, in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.child.id())
    }

    /// CPU time the Envoy process has used so far, in clock ticks.
    pub fn cpu_ticks(&self) -> Option<u64> {
        cpu_ticks(self.child.id())
    }

    /// CPU time all of Envoy's threads have run so far, in nanoseconds (see [`cpu_ns`]).
    pub fn cpu_ns(&self) -> Option<u64> {
        cpu_ns(self.child.id())
    }

    /// Envoy's own heap (its allocator's figures from the admin `/memory`): what is allocated,
    /// and what the allocator holds freed without returning it to the system.
    pub fn allocator(&self) -> Option<Allocator> {
        let text = crate::http::get(&self.admin_url("/memory")).ok()?.text();
        let memory: serde_json::Value = serde_json::from_str(&text).ok()?;
        let bytes = |field: &str| memory[field].as_str()?.parse::<u64>().ok();
        Some(Allocator {
            allocated: bytes("allocated")?,
            held_free: bytes("pageheap_free")? + bytes("total_thread_cache")?,
        })
    }
}

/// Envoy's heap, in bytes (see [`Envoy::allocator`]).
#[derive(Debug, Clone, Copy)]
pub struct Allocator {
    pub allocated: u64,
    /// Free pages and per-thread caches the allocator keeps: resident, but nobody's data.
    pub held_free: u64,
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time a process has used so far (user and system), in clock ticks
/// ([`clock_ticks_per_second`]).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces, so it is skipped by its `)`):
    // state is the 3rd field of the line, utime the 14th and stime the 15th.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU time a process's live threads have run so far, in nanoseconds: the scheduler's
/// `sum_exec_runtime` (the first field of `/proc/PID/task/TID/schedstat`) summed over them
/// (a thread that has ended no longer counts: Envoy keeps its threads). Unlike
/// [`cpu_ticks`] (whole clock ticks, 10 ms each), it resolves the few milliseconds a few hundred
/// requests cost. A thread's figure is brought up to date when it stops running, so read it
/// while the process is idle for the last work to count.
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    let mut threads = 0usize;
    for task in tasks.flatten() {
        // A thread that ended between the listing and the read is skipped.
        let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
        threads += 1;
    }
    (threads > 0).then_some(total)
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 where it cannot be asked).
pub fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// `VmRSS` of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Runs `envoy --mode validate` on a config; `Ok(log)` when Envoy accepts it, `Err(log)` when not.
pub fn validate(config: &str) -> Result<String, String> {
    validate_env(config, &[])
}

/// Same, with environment variables for the Envoy process.
pub fn validate_env(config: &str, env: &[(&str, &str)]) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("no temp dir: {e}"))?;
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, config).map_err(|e| format!("cannot write config: {e}"))?;
    let out = Command::new(paths::envoy())
        .args(["--mode", "validate", "--use-dynamic-base-id", "-c"])
        .arg(&path)
        .envs(env.iter().copied())
        .output()
        .map_err(|e| format!("cannot run Envoy: {e}"))?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && log.contains("OK") {
        Ok(log)
    } else {
        Err(log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_grow_with_work() {
        let me = std::process::id();
        let before = cpu_ticks(me).unwrap();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        let mut now = before;
        // Busy until five ticks are counted (50 ms at 100 a second), or give up after 10 s.
        while now < before + 5 && start.elapsed() < Duration::from_secs(10) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            now = cpu_ticks(me).unwrap();
        }
        assert!(
            now >= before + 5,
            "{before} -> {now} in {:?}",
            start.elapsed()
        );
        assert!(clock_ticks_per_second() >= 100);
        assert!(cpu_ticks(u32::MAX).is_none());
    }

    #[test]
    fn cpu_ns_grows_with_work_in_any_thread() {
        let me = std::process::id();
        let before = cpu_ns(me).unwrap();
        // 30 ms of CPU on another thread of this process (its own run time, so a loaded machine
        // only makes it take longer), which stays alive (idle) while the figure is read: a
        // thread's time is counted while it lives.
        let own = || {
            std::fs::read_to_string("/proc/thread-self/schedstat")
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let (exit_tx, exit_rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            let (start, mine) = (std::time::Instant::now(), own());
            let mut x = 0u64;
            while own() < mine + 30_000_000 && start.elapsed() < Duration::from_secs(10) {
                for _ in 0..10_000 {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            done_tx.send(()).unwrap();
            exit_rx.recv().unwrap();
            x
        });
        done_rx.recv().unwrap();
        let after = cpu_ns(me).unwrap();
        exit_tx.send(()).unwrap();
        let _ = worker.join().unwrap();
        assert!(after >= before + 30_000_000, "{before} -> {after}");
        assert!(cpu_ns(u32::MAX).is_none());
    }
}
