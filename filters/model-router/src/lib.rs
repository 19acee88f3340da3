//! model-router: route by model to an Envoy cluster, translate provider dialects.
//!
//! Foundation stage: loads and validates its config, passes traffic through untouched.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use sluice_core::ConfigError;

use sluice_core::model_router::config::ModelRouterConfig;

pub struct ModelRouter;

impl sluice_host::Filter for ModelRouter {
    const NAME: &'static str = "model-router";
    type Config = ModelRouterConfig;
    type Runtime = ModelRouterConfig;

    fn prepare(config: ModelRouterConfig) -> Result<ModelRouterConfig, ConfigError> {
        Ok(config)
    }

    fn http_context(config: Rc<ModelRouterConfig>, _context_id: u32) -> Box<dyn HttpContext> {
        Box::new(ModelRouterStream { _config: config })
    }
}

struct ModelRouterStream {
    _config: Rc<ModelRouterConfig>,
}

impl Context for ModelRouterStream {}
impl HttpContext for ModelRouterStream {}

proxy_wasm::main! {{
    sluice_host::install::<ModelRouter>();
}}
