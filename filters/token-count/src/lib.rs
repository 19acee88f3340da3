//! token-count: exact prompt tokens before the request leaves, completion tokens after.
//!
//! Foundation stage: loads and validates its config, passes traffic through untouched.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use sluice_core::ConfigError;

use sluice_core::token_count::config::TokenCountConfig;

pub struct TokenCount;

impl sluice_host::Filter for TokenCount {
    const NAME: &'static str = "token-count";
    type Config = TokenCountConfig;
    type Runtime = TokenCountConfig;

    fn prepare(config: TokenCountConfig) -> Result<TokenCountConfig, ConfigError> {
        Ok(config)
    }

    fn http_context(config: Rc<TokenCountConfig>, _context_id: u32) -> Box<dyn HttpContext> {
        Box::new(TokenCountStream { _config: config })
    }
}

struct TokenCountStream {
    _config: Rc<TokenCountConfig>,
}

impl Context for TokenCountStream {}
impl HttpContext for TokenCountStream {}

proxy_wasm::main! {{
    sluice_host::install::<TokenCount>();
}}
