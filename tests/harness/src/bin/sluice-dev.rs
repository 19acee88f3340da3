//! `sluice-dev run` (what `make run` starts) and `sluice-dev bench` (what `make bench` runs).
//!
//! run: the mock provider and Envoy with the whole chain on 127.0.0.1:$SLUICE_PORT (10000),
//! admin on $SLUICE_ADMIN_PORT (9901); prints a curl that works; Ctrl-C (or SIGTERM, SIGHUP)
//! stops both and removes its temp files. Envoy's log and the access log are kept, fresh each
//! run, in `.sluice/run/` (or $SLUICE_RUN_DIR).
//! With SLUICE_PROVIDERS=1 the real provider clusters of envoy/providers.yaml are added.
//!
//! bench: see `sluice_harness::bench`.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use sluice_harness::envoy::{render_template, template_vars};
use sluice_harness::{bench, demo_curl, paths, providers, Envoy, MockProvider, DEMO_KEY};

fn env_port(name: &str, default: u16) -> Result<u16, String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().map_err(|_| format!("{name}={v:?} is not a port")),
        _ => Ok(default),
    }
}

fn run() -> Result<(), String> {
    let port = env_port("SLUICE_PORT", 10000)?;
    let admin = env_port("SLUICE_ADMIN_PORT", 9901)?;
    // From here on SIGINT, SIGTERM and SIGHUP end the run the same way: children stopped, temp
    // files removed (a signal during start-up is acted on once Envoy is up).
    let (tx, rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .map_err(|e| format!("cannot catch Ctrl-C: {e}"))?;
    // The logs outlive the run; each run starts them afresh.
    let run_dir = paths::run_dir();
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;
    let run_dir = run_dir.canonicalize().unwrap_or(run_dir);
    let access_log = run_dir.join("access.log");
    let envoy_log = run_dir.join("envoy.log");
    for old in [&access_log, &envoy_log] {
        match std::fs::remove_file(old) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("cannot remove {}: {e}", old.display()))
            }
            _ => {}
        }
    }
    let mock = MockProvider::start()?;
    let mut vars = template_vars(port, admin, mock.port);
    vars.insert("ACCESS_LOG", access_log.display().to_string());
    let mut config = render_template("envoy/sluice.yaml", &vars, &BTreeMap::new())?;
    if std::env::var("SLUICE_PROVIDERS").is_ok_and(|v| v == "1") {
        let (with_providers, notes) =
            providers::with_real_providers(config, |v| std::env::var(v).ok())?;
        config = with_providers;
        for note in notes {
            println!("{note}");
        }
    }
    let mut envoy = Envoy::start_fixed_with_log(&config, port, admin, &envoy_log)?;
    println!("Sluice is up: Envoy 127.0.0.1:{port} (admin 127.0.0.1:{admin}), the whole chain in front of the mock provider on 127.0.0.1:{}.", mock.port);
    println!(
        "Logs (kept after the run, started afresh by the next): {}",
        run_dir.display()
    );
    println!("Envoy log: {}", envoy.log_path().display());
    println!(
        "Access log (JSON lines, with tokens and consumer): {}",
        access_log.display()
    );
    println!("Caller key (the demo consumer): {DEMO_KEY}");
    println!("Try:");
    println!("{}", demo_curl(port));
    println!("Anthropic-style callers and claude-* models work too, e.g.:");
    println!(
        "curl -s http://127.0.0.1:{port}/v1/messages -H 'x-api-key: {DEMO_KEY}' \\\n  \
         -d '{{\"model\":\"claude-sonnet-5-5\",\"max_tokens\":64,\"messages\":[{{\"role\":\"user\",\"content\":\"Hello, Sluice!\"}}]}}'"
    );
    println!("Ctrl-C stops everything.");
    let _ = rx.recv();
    println!("\nstopping Envoy and the mock provider");
    // SIGTERM first: Envoy flushes the access log as it exits.
    envoy.stop(Duration::from_secs(10));
    drop(envoy);
    drop(mock);
    println!("stopped; logs kept in {}", run_dir.display());
    Ok(())
}

fn main() {
    let cmd = std::env::args().nth(1).unwrap_or_default();
    let result = match cmd.as_str() {
        "run" => run(),
        "bench" => bench::run(),
        _ => Err("usage: sluice-dev run | bench".to_owned()),
    };
    if let Err(e) = result {
        eprintln!("sluice-dev: {e}");
        std::process::exit(1);
    }
}
