//! Renders the `${NAME}` placeholders of the configs in `envoy/`.

/// Replaces every `${NAME}` in a config; fails on a placeholder left unreplaced, so a template
/// and its renderer cannot drift apart silently (the renderer `make oci` uses).
pub use sluice_oci::render;

/// Replaces the JSON config of the plugin named `plugin` (its `config.name`) in a rendered
/// chain config. The shipped configs keep each plugin's JSON on one `value: '…'` line right
/// after `"@type": type.googleapis.com/google.protobuf.StringValue`.
pub fn set_plugin_config(config: &str, plugin: &str, json: &str) -> crate::Result<String> {
    let marker = format!("name: {plugin}\n");
    let start = config
        .find(&marker)
        .ok_or_else(|| format!("no plugin named {plugin} in the config"))?;
    let after = config.get(start..).unwrap_or_default();
    let value_at = after
        .find("value: '")
        .ok_or_else(|| format!("plugin {plugin} has no inline configuration value"))?;
    let line_end = after
        .get(value_at..)
        .and_then(|l| l.find('\n'))
        .ok_or("unterminated value line")?;
    let quoted = json.replace('\'', "''");
    let mut out = String::with_capacity(config.len() + json.len());
    out.push_str(config.get(..start + value_at).unwrap_or_default());
    out.push_str(&format!("value: '{quoted}'"));
    out.push_str(
        config
            .get(start + value_at + line_end..)
            .unwrap_or_default(),
    );
    Ok(out)
}

/// [`set_plugin_config`] for every entry of the plugin named `plugin` (a plugin may be listed in
/// more than one filter chain, e.g. key-injection's inject role on the internal listener).
pub fn set_plugin_config_everywhere(
    config: &str,
    plugin: &str,
    json: &str,
) -> crate::Result<String> {
    let marker = format!("name: {plugin}\n");
    let mut out = String::with_capacity(config.len());
    let mut rest = config;
    let mut found = false;
    while let Some(at) = rest.find(&marker) {
        let (before, from) = rest.split_at(at);
        // The entry runs to the next `value: '…'` line, which set_plugin_config rewrites.
        let end = from
            .find("value: '")
            .and_then(|v| from.get(v..)?.find('\n').map(|n| v + n + 1))
            .ok_or_else(|| format!("plugin {plugin} has no inline configuration value"))?;
        let (entry, after) = from.split_at(end);
        out.push_str(before);
        out.push_str(&set_plugin_config(entry, plugin, json)?);
        rest = after;
        found = true;
    }
    if !found {
        return Err(format!("no plugin named {plugin} in the config"));
    }
    out.push_str(rest);
    Ok(out)
}

/// The inline JSON config of the plugin named `plugin`, as [`set_plugin_config`] finds it.
pub fn plugin_config(config: &str, plugin: &str) -> Option<String> {
    let start = config.find(&format!("name: {plugin}\n"))?;
    let after = config.get(start..)?;
    let value_at = after.find("value: '")? + "value: '".len();
    let rest = after.get(value_at..)?;
    let end = rest.find("'\n")?;
    Some(rest.get(..end)?.replace("''", "'"))
}

/// Keeps only the `http_filters` entries whose `name:` is in `keep` (plus Envoy's own filters the
/// configs carry, the router and the decompressor, as envoy/bare.yaml has them), for
/// benchmarking a filter alone in the shipped chain config. Entries are the list items at the
/// indentation the shipped configs use.
pub fn only_filters(config: &str, keep: &[&str]) -> String {
    const ITEM: &str = "          - name: ";
    let mut out = String::with_capacity(config.len());
    let mut in_filters = false;
    let mut keeping = true;
    for line in config.split_inclusive('\n') {
        if line.trim_start().starts_with("http_filters:") {
            in_filters = true;
        } else if in_filters && line.starts_with("  clusters:") {
            in_filters = false;
            keeping = true;
        } else if in_filters {
            if let Some(name) = line.strip_prefix(ITEM) {
                let name = name.trim();
                keeping = name == "envoy.filters.http.router"
                    || name == "envoy.filters.http.decompressor"
                    || keep.contains(&name);
            } else if line.starts_with("          #") {
                continue; // comments between entries
            }
        }
        if keeping {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn renders_and_refuses_leftovers() {
        let mut vars = BTreeMap::new();
        vars.insert("A", "1".to_owned());
        assert_eq!(render("x ${A} y", &vars).unwrap(), "x 1 y");
        assert_eq!(
            render("${A} ${B}", &vars).unwrap_err(),
            "unrendered placeholder ${B}"
        );
    }

    #[test]
    fn replaces_every_entry_of_a_plugin() {
        let cfg = "name: a\n  value: '{}'\nname: b\n  value: '1'\nname: a\n  value: '{}'\n";
        let out = set_plugin_config_everywhere(cfg, "a", "2").unwrap();
        assert_eq!(
            out,
            "name: a\n  value: '2'\nname: b\n  value: '1'\nname: a\n  value: '2'\n"
        );
    }

    #[test]
    fn keeps_only_the_named_filters() {
        let cfg = "a:\n          http_filters:\n          # one\n          - name: one\n            x: 1\n          - name: two\n            y: 2\n          - name: envoy.filters.http.router\n            z: 3\n  clusters:\n  - c\n";
        assert_eq!(
            only_filters(cfg, &["two"]),
            "a:\n          http_filters:\n          - name: two\n            y: 2\n          - name: envoy.filters.http.router\n            z: 3\n  clusters:\n  - c\n"
        );
    }

    #[test]
    fn replaces_one_plugin_config() {
        let cfg = "name: a\n  value: '{}'\nname: b\n  value: '{\"x\":1}'\n";
        let out = set_plugin_config(cfg, "b", r#"{"y":"it's"}"#).unwrap();
        assert_eq!(
            out,
            "name: a\n  value: '{}'\nname: b\n  value: '{\"y\":\"it''s\"}'\n"
        );
    }
}
