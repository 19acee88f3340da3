//! key-injection: gateway keys in, provider credentials out.
//!
//! Foundation stage: loads and validates its config, passes traffic through untouched.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};

use sluice_core::key_injection::config::KeyInjectionConfig;

pub struct KeyInjection;

impl sluice_host::Filter for KeyInjection {
    const NAME: &'static str = "key-injection";
    type Config = KeyInjectionConfig;

    fn http_context(config: Rc<KeyInjectionConfig>, _context_id: u32) -> Box<dyn HttpContext> {
        Box::new(KeyInjectionStream { _config: config })
    }
}

struct KeyInjectionStream {
    _config: Rc<KeyInjectionConfig>,
}

impl Context for KeyInjectionStream {}
impl HttpContext for KeyInjectionStream {}

proxy_wasm::main! {{
    sluice_host::install::<KeyInjection>();
}}
