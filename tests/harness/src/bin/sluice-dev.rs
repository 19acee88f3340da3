//! `sluice-dev run` (what `make run` starts) and `sluice-dev bench` (what `make bench` runs).
//!
//! run: the mock provider and Envoy with the whole chain on 127.0.0.1:$SLUICE_PORT (10000),
//! admin on $SLUICE_ADMIN_PORT (9901); prints a curl that works; Ctrl-C (or SIGTERM, SIGHUP)
//! stops both and removes its temp files. Envoy's log and the access log are kept, fresh each
//! run, in `.sluice/run/` (or $SLUICE_RUN_DIR).
//! With SLUICE_PROVIDERS=1 the real provider clusters of envoy/providers.yaml are added.
//!
//! run --ecds (`make run-ecds`): the same, in the hot-swap layout (envoy/sluice-ecds.yaml): the
//! filters come through ECDS from the directory $SLUICE_ECDS_DIR (default `.sluice/ecds/`),
//! which is filled afresh from the current builds and envoy/sluice.yaml's plugin configs.
//!
//! swap (`make swap`): `sluice-dev swap --dir DIR --filter NAME [--wasm PATH] [--config PATH]
//! [--unchecked]` replaces a filter's build and/or config in that layout (see
//! `sluice_harness::ecds`).
//!
//! run --config PATH: the same with another config of envoy/ in place of sluice.yaml (e.g.
//! `envoy/alone/moderation.yaml`, one filter alone); it is rendered as sluice.yaml is.
//!
//! configs (`make configs`): rewrites the configs made from envoy/sluice.yaml (each filter
//! alone in envoy/alone/, the hot-swap layout, and the local-reply mappers of the others and of
//! the Istio EnvoyFilter), keeping what is each file's own (see `sluice_harness::configs`).
//!
//! bench: see `sluice_harness::bench`.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use sluice_harness::envoy::{render_template, template_vars};
use sluice_harness::{
    bench, configs, demo_curl, ecds, paths, providers, Envoy, MockProvider, DEMO_KEY,
};

fn env_port(name: &str, default: u16) -> Result<u16, String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().map_err(|_| format!("{name}={v:?} is not a port")),
        _ => Ok(default),
    }
}

/// The hot-swap layout's directory: $SLUICE_ECDS_DIR, else `.sluice/ecds/` in the repo.
fn ecds_dir() -> std::path::PathBuf {
    match std::env::var("SLUICE_ECDS_DIR") {
        Ok(dir) if !dir.is_empty() => dir.into(),
        _ => paths::repo().join(".sluice/ecds"),
    }
}

/// What `run` starts: the chain, the hot-swap layout, or another config of envoy/.
enum Layout {
    Chain,
    HotSwap,
    Config(String),
}

fn run(layout: Layout) -> Result<(), String> {
    let hot_swap = matches!(layout, Layout::HotSwap);
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
    let providers = std::env::var("SLUICE_PROVIDERS").is_ok_and(|v| v == "1");
    let template = if let Layout::Config(path) = &layout {
        if providers {
            return Err("SLUICE_PROVIDERS=1 goes with envoy/sluice.yaml only".to_owned());
        }
        path.as_str()
    } else if hot_swap {
        if providers {
            return Err(
                "SLUICE_PROVIDERS=1 is for make run; in the hot-swap layout give \
                        model-router and key-injection their provider configs with make swap"
                    .to_owned(),
            );
        }
        let dir = ecds_dir();
        let done = ecds::init(&dir, &paths::wasm_dir())?;
        let dir = dir.canonicalize().unwrap_or(dir);
        println!("Hot-swap layout in {} (filled afresh):", dir.display());
        for line in done {
            println!("  {line}");
        }
        vars.insert("ECDS_DIR", dir.display().to_string());
        "envoy/sluice-ecds.yaml"
    } else {
        "envoy/sluice.yaml"
    };
    let mut config = render_template(template, &vars, &BTreeMap::new())?;
    if providers {
        let (with_providers, notes) =
            providers::with_real_providers(config, |v| std::env::var(v).ok())?;
        config = with_providers;
        for note in notes {
            println!("{note}");
        }
    }
    let mut envoy = Envoy::start_fixed_with_log(&config, port, admin, &envoy_log)?;
    let what = match &layout {
        Layout::Config(path) => path.as_str(),
        _ => "the whole chain",
    };
    println!("Sluice is up: Envoy 127.0.0.1:{port} (admin 127.0.0.1:{admin}), {what} in front of the mock provider on 127.0.0.1:{}.", mock.port);
    println!(
        "Logs (kept after the run, started afresh by the next): {}",
        run_dir.display()
    );
    println!("Envoy log: {}", envoy.log_path().display());
    println!(
        "Access log (JSON lines, with tokens and consumer): {}",
        access_log.display()
    );
    if config.contains("name: key_injection_authenticate\n") {
        println!("Caller key (the demo consumer): {DEMO_KEY}");
    } else {
        println!("No key-injection in this config: the caller's key goes upstream as sent.");
    }
    println!("Try:");
    println!("{}", demo_curl(port));
    println!("Anthropic-style callers and claude-* models work too, e.g.:");
    println!(
        "curl -s http://127.0.0.1:{port}/v1/messages -H 'x-api-key: {DEMO_KEY}' \\\n  \
         -d '{{\"model\":\"claude-sonnet-5-5\",\"max_tokens\":64,\"messages\":[{{\"role\":\"user\",\"content\":\"Hello, Sluice!\"}}]}}'"
    );
    if hot_swap {
        println!(
            "Swap a build or config while it runs: make swap FILTER=token-count [WASM=path] [CONFIG=path]"
        );
    }
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

const USAGE: &str = "usage: sluice-dev run [--ecds | --config PATH] | configs | bench | swap \
                     --filter NAME [--dir DIR] [--wasm PATH] [--config PATH] [--unchecked]";

/// `sluice-dev swap …`: see `ecds::swap`. With neither --wasm nor --config, the filter's
/// current build in the build folder (what `make wasm` just built) is the new build.
fn swap(args: &[String]) -> Result<(), String> {
    let mut dir = ecds_dir();
    let mut swap = ecds::Swap::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--dir" => dir = value()?.into(),
            "--filter" => swap.filter = value()?,
            "--wasm" => swap.wasm = Some(value()?.into()),
            "--config" => swap.config = Some(value()?.into()),
            "--unchecked" => swap.unchecked = true,
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if swap.filter.is_empty() {
        return Err(USAGE.to_owned());
    }
    if swap.wasm.is_none() && swap.config.is_none() {
        let module = ecds::resources_of(&swap.filter)?
            .first()
            .map(|r| r.module)
            .unwrap_or_default();
        swap.wasm = Some(paths::wasm_dir().join(format!("{module}.wasm")));
    }
    for line in ecds::swap(&dir, &swap)? {
        println!("{line}");
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    let result = match args.first().map(String::as_str).unwrap_or_default() {
        "run" if rest.is_empty() => run(Layout::Chain),
        "run" if rest == ["--ecds"] => run(Layout::HotSwap),
        "run" if rest.len() == 2 && rest.first().is_some_and(|a| a == "--config") => {
            run(Layout::Config(rest.get(1).cloned().unwrap_or_default()))
        }
        "configs" if rest.is_empty() => configs::write_all().map(|done| {
            for line in done {
                println!("{line}");
            }
        }),
        "bench" => bench::run(),
        "swap" => swap(rest),
        _ => Err(USAGE.to_owned()),
    };
    if let Err(e) = result {
        eprintln!("sluice-dev: {e}");
        std::process::exit(1);
    }
}
