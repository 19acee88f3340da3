//! prompt-template's plugin config.

use std::collections::BTreeMap;

use crate::config::{require_non_empty, ConfigError, JsonPath, Validate};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PromptTemplateConfig {
    /// Templates by name.
    #[serde(default)]
    pub templates: BTreeMap<String, Template>,
}

/// A named template: the messages it expands to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub messages: Vec<TemplateMessage>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateMessage {
    pub role: String,
    pub content: String,
}

const ROLES: [&str; 4] = ["system", "developer", "user", "assistant"];

impl Validate for PromptTemplateConfig {
    fn validate(&self, path: &JsonPath) -> Result<(), ConfigError> {
        let templates = path.field("templates");
        for (name, template) in &self.templates {
            let at = templates.key(name);
            require_non_empty(&at, name)?;
            if template.messages.is_empty() {
                return Err(at.field("messages").error("must hold at least one message"));
            }
            for (i, m) in template.messages.iter().enumerate() {
                if !ROLES.contains(&m.role.as_str()) {
                    return Err(at
                        .field("messages")
                        .index(i)
                        .field("role")
                        .error(format!("must be one of {ROLES:?}, got {:?}", m.role)));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::parse_config;

    #[test]
    fn accepts_a_template() {
        let c: PromptTemplateConfig = parse_config(
            br#"{"templates":{"greet":{"messages":[{"role":"user","content":"Hi {{name}}"}]}}}"#,
        )
        .unwrap();
        assert_eq!(c.templates["greet"].messages.len(), 1);
    }

    #[test]
    fn bad_role_names_the_field() {
        let err = parse_config::<PromptTemplateConfig>(
            br#"{"templates":{"greet":{"messages":[{"role":"robot","content":"x"}]}}}"#,
        )
        .unwrap_err();
        assert_eq!(err.path, r#"$.templates["greet"].messages[0].role"#);
    }

    #[test]
    fn empty_template_is_refused() {
        let err = parse_config::<PromptTemplateConfig>(br#"{"templates":{"t":{"messages":[]}}}"#)
            .unwrap_err();
        assert_eq!(err.path, r#"$.templates["t"].messages"#);
    }
}
