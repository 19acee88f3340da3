//! `sluice-dev run` (what `make run` starts) and `sluice-dev bench` (what `make bench` runs).
//!
//! run: the mock provider and Envoy with the whole chain on 127.0.0.1:$SLUICE_PORT (10000),
//! admin on $SLUICE_ADMIN_PORT (9901); prints a curl that works; Ctrl-C stops both.
//! With SLUICE_PROVIDERS=1 the real provider clusters of envoy/providers.yaml are added.
//!
//! bench: see `sluice_harness::bench`.

use std::collections::BTreeMap;
use std::sync::mpsc;

use sluice_harness::envoy::{render_template, template_vars};
use sluice_harness::{bench, demo_curl, providers, Envoy, MockProvider, DEMO_KEY};

fn env_port(name: &str, default: u16) -> Result<u16, String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().map_err(|_| format!("{name}={v:?} is not a port")),
        _ => Ok(default),
    }
}

fn run() -> Result<(), String> {
    let port = env_port("SLUICE_PORT", 10000)?;
    let admin = env_port("SLUICE_ADMIN_PORT", 9901)?;
    let mock = MockProvider::start()?;
    let logs = tempfile::tempdir().map_err(|e| format!("no temp dir: {e}"))?;
    let access_log = logs.path().join("access.log");
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
    let envoy = Envoy::start_fixed(&config, port, admin)?;
    println!("Sluice is up: Envoy 127.0.0.1:{port} (admin 127.0.0.1:{admin}), the whole chain in front of the mock provider on 127.0.0.1:{}.", mock.port);
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
         -d '{{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":64,\"messages\":[{{\"role\":\"user\",\"content\":\"Hello, Sluice!\"}}]}}'"
    );
    println!("Ctrl-C stops everything.");
    let (tx, rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .map_err(|e| format!("cannot catch Ctrl-C: {e}"))?;
    let _ = rx.recv();
    println!("\nstopping Envoy and the mock provider");
    drop(envoy);
    drop(mock);
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
