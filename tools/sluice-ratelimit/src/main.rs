//! sluice-ratelimit: a rate-limit service for Envoy's global rate-limit filter, so that every
//! Envoy of a fleet charges one shared token budget (README, "Token limits across many Envoys").
//!
//! Speaks `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` (gRPC) and counts in
//! Redis through Kuadrant's limitador. A descriptor is checked and charged its `hits_addend`
//! (the prompt tokens): over the budget (current + hits > max) it is refused, `OVER_LIMIT`, and
//! nothing is added. A descriptor with the entry `charge: stream_done` (the completion tokens,
//! sent when the stream is done) is added without a check and never refused.
//!
//! ```text
//! sluice-ratelimit --config limits.json --redis redis://127.0.0.1:6379 [--listen 127.0.0.1:8081]
//! ```
//!
//! Prints `sluice-ratelimit listening on <addr>` once it serves (`--listen 127.0.0.1:0` picks a
//! free port).

mod config;
mod service;

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitServiceServer;
use limitador::storage::redis::AsyncRedisStorage;
use limitador::AsyncRateLimiter;

use crate::config::Config;
use crate::service::TokenLimits;

const USAGE: &str = "usage: sluice-ratelimit --config FILE --redis redis://HOST:PORT [--listen ADDR]

  --config FILE   the limits (JSON): {\"domain\": \"sluice\", \"limits\": [{\"keys\": [\"consumer\", \"model\"],
                  \"max_tokens\": 100000, \"window_seconds\": 60}]}
  --redis URL     the Redis that holds the counters (shared by every instance of this service)
  --listen ADDR   where to serve gRPC (default 127.0.0.1:8081; port 0 picks a free one)";

/// How long connecting to Redis at start may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one gRPC call as a whole (Envoy's filter gives up after its own `timeout`, 1 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Args {
    config: String,
    redis: String,
    listen: SocketAddr,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut config, mut redis) = (None, None);
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 8081));
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--config" => config = Some(value()?),
            "--redis" => redis = Some(value()?),
            "--listen" => {
                let v = value()?;
                listen = v
                    .parse()
                    .map_err(|e| format!("--listen {v}: not an address ({e})"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(Args {
        config: config.ok_or_else(|| format!("--config is required\n{USAGE}"))?,
        redis: redis.ok_or_else(|| format!("--redis is required\n{USAGE}"))?,
        listen,
    })
}

async fn serve(args: Args, config: Config) -> Result<(), String> {
    let storage = tokio::time::timeout(CONNECT_TIMEOUT, AsyncRedisStorage::new(&args.redis))
        .await
        .map_err(|_| {
            format!(
                "Redis at {} not reached within {CONNECT_TIMEOUT:?}",
                args.redis
            )
        })?
        .map_err(|e| format!("Redis at {}: {e}", args.redis))?;
    let limiter = AsyncRateLimiter::new_with_storage(Box::new(storage));
    for limit in config.limits()? {
        limiter.add_limit(limit);
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("no local address: {e}"))?;
    // The first line on stdout tells a caller the port (a closed stdout is no reason to stop).
    let _ = writeln!(
        std::io::stdout().lock(),
        "sluice-ratelimit listening on {addr}"
    );
    let service = TokenLimits {
        limiter,
        timeout: Duration::from_millis(config.redis_timeout_ms),
        checks: tokio::sync::Mutex::new(()),
    };
    tonic::transport::Server::builder()
        .timeout(REQUEST_TIMEOUT)
        .add_service(RateLimitServiceServer::new(service))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
        .await
        .map_err(|e| format!("server failed: {e}"))
}

fn run() -> Result<(), String> {
    let args = parse_args(std::env::args().skip(1))?;
    let text = std::fs::read_to_string(&args.config)
        .map_err(|e| format!("cannot read {}: {e}", args.config))?;
    let config = Config::parse(&text)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("no async runtime: {e}"))?;
    runtime.block_on(serve(args, config))
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-ratelimit: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse_args(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn reads_its_arguments() {
        let a = args(&[
            "--config",
            "c.json",
            "--redis",
            "redis://x",
            "--listen",
            "127.0.0.1:0",
        ])
        .unwrap();
        assert_eq!(a.config, "c.json");
        assert_eq!(a.listen.port(), 0);
        assert_eq!(
            args(&["--config", "c", "--redis", "r"])
                .unwrap()
                .listen
                .port(),
            8081
        );
        assert!(args(&["--config"]).unwrap_err().contains("needs a value"));
        assert!(args(&["--redis", "r"])
            .unwrap_err()
            .contains("--config is required"));
        assert!(args(&["--bogus"]).unwrap_err().contains("unknown argument"));
    }
}
