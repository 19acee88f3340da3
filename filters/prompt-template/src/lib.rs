//! prompt-template: named templates with variables, system-message decoration, prompts as REST endpoints.
//!
//! Foundation stage: loads and validates its config, passes traffic through untouched.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use sluice_core::ConfigError;

use sluice_core::prompt_template::config::PromptTemplateConfig;

pub struct PromptTemplate;

impl sluice_host::Filter for PromptTemplate {
    const NAME: &'static str = "prompt-template";
    type Config = PromptTemplateConfig;
    type Runtime = PromptTemplateConfig;

    fn prepare(config: PromptTemplateConfig) -> Result<PromptTemplateConfig, ConfigError> {
        Ok(config)
    }

    fn http_context(config: Rc<PromptTemplateConfig>, _context_id: u32) -> Box<dyn HttpContext> {
        Box::new(PromptTemplateStream { _config: config })
    }
}

struct PromptTemplateStream {
    _config: Rc<PromptTemplateConfig>,
}

impl Context for PromptTemplateStream {}
impl HttpContext for PromptTemplateStream {}

proxy_wasm::main! {{
    sluice_host::install::<PromptTemplate>();
}}
