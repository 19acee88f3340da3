//! The root context shared by all filters: config in, HTTP contexts out.

use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};
use serde::de::DeserializeOwned;
use sluice_core::{parse_config, ConfigError, Validate};

/// What a filter crate provides: its name, its config type, how to turn a validated config into
/// what its requests use (resolving secrets, compiling patterns), and a per-request context.
pub trait Filter: 'static {
    /// Short name used in logs, e.g. `token-count`.
    const NAME: &'static str;
    type Config: DeserializeOwned + Validate + 'static;
    /// What the HTTP contexts share; built once per config.
    type Runtime: 'static;

    /// A failure refuses the config, like a validation error.
    fn prepare(config: Self::Config) -> Result<Self::Runtime, ConfigError>;

    fn http_context(runtime: Rc<Self::Runtime>, context_id: u32) -> Box<dyn HttpContext>;

    /// How often [`Filter::on_tick`] runs on each VM (each worker), if at all.
    const TICK: Option<Duration> = None;

    /// Periodic work off the request path: refresh caches, read shared data.
    fn on_tick(_runtime: &Self::Runtime) {}
}

/// Registers the filter's root context. Call it from `proxy_wasm::main!`.
pub fn install<F: Filter>() {
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(PluginRoot::<F> { runtime: None })
    });
}

/// Holds the current validated config of one plugin instance.
pub struct PluginRoot<F: Filter> {
    runtime: Option<Rc<F::Runtime>>,
}

impl<F: Filter> Context for PluginRoot<F> {}

/// `F::prepare`, kept out of `on_configure` (see `sluice_core::parse_config` for why).
#[inline(never)]
fn prepare<F: Filter>(config: F::Config) -> Result<F::Runtime, sluice_core::ConfigError> {
    F::prepare(config)
}

impl<F: Filter> RootContext for PluginRoot<F> {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                log::error!("sluice {}: cannot read plugin config: {status:?}", F::NAME);
                return false;
            }
        };
        match parse_config::<F::Config>(&bytes).and_then(prepare::<F>) {
            Ok(runtime) => {
                self.runtime = Some(Rc::new(runtime));
                if let Some(period) = F::TICK {
                    if let Err(status) = hostcalls::set_tick_period(period) {
                        log::error!("sluice {}: cannot set tick period: {status:?}", F::NAME);
                    }
                }
                log::info!("sluice {}: config loaded", F::NAME);
                true
            }
            Err(err) => {
                // Returning false makes Envoy refuse this config and keep the one it had.
                log::error!("sluice {}: config refused: {err}", F::NAME);
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let Some(runtime) = &self.runtime {
            F::on_tick(runtime);
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let runtime = self.runtime.clone()?;
        Some(F::http_context(runtime, context_id))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
