//! moderation: deny/allow patterns, PII masking, injection heuristics, external moderation.
//!
//! Foundation stage: loads and validates its config, passes traffic through untouched.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use sluice_core::ConfigError;

use sluice_core::moderation::config::ModerationConfig;

pub struct Moderation;

impl sluice_host::Filter for Moderation {
    const NAME: &'static str = "moderation";
    type Config = ModerationConfig;
    type Runtime = ModerationConfig;

    fn prepare(config: ModerationConfig) -> Result<ModerationConfig, ConfigError> {
        Ok(config)
    }

    fn http_context(config: Rc<ModerationConfig>, _context_id: u32) -> Box<dyn HttpContext> {
        Box::new(ModerationStream { _config: config })
    }
}

struct ModerationStream {
    _config: Rc<ModerationConfig>,
}

impl Context for ModerationStream {}
impl HttpContext for ModerationStream {}

proxy_wasm::main! {{
    sluice_host::install::<Moderation>();
}}
