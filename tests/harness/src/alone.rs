//! The configs in `envoy/alone/`: each Sluice filter alone, made from `envoy/sluice.yaml` so that
//! they cannot drift from the chain. `make configs` writes them (keeping each file's own header
//! comment; see [`crate::configs`]); a test (tests/configs.rs) checks that each file is what it
//! would write.
//!
//! A config alone is the chain config from `node:` on with only the filter's `http_filters`
//! entries kept ([`only_filters`]: plus Envoy's decompressor and router), on every listener.
//! Without model-router the fallback's internal listener `sluice_internal`, its cluster
//! `sluice_loopback` and the bootstrap extension they need are dropped too: only model-router
//! sends requests there, and without model-router nothing removes a caller's `x-sluice-cluster`,
//! so a caller could send a request into that listener by naming the cluster.

use crate::render::only_filters;

/// One filter alone.
pub struct Alone {
    /// File name in `envoy/alone/`.
    pub file: &'static str,
    /// The `http_filters` entries of `envoy/sluice.yaml` it keeps.
    pub entries: &'static [&'static str],
}

/// Where they are, relative to the repo.
pub const DIR: &str = "envoy/alone";

pub const CONFIGS: [Alone; 5] = [
    Alone {
        file: "key-injection.yaml",
        entries: &[
            "sluice.key_injection.authenticate",
            "sluice.key_injection.inject",
        ],
    },
    Alone {
        file: "prompt-template.yaml",
        entries: &["sluice.prompt_template"],
    },
    Alone {
        file: "moderation.yaml",
        entries: &["sluice.moderation"],
    },
    Alone {
        file: "model-router.yaml",
        entries: &["sluice.model_router"],
    },
    Alone {
        file: "token-count.yaml",
        entries: &["sluice.token_count"],
    },
];

impl Alone {
    /// `envoy/alone/<file>`.
    pub fn path(&self) -> String {
        format!("{DIR}/{}", self.file)
    }
}

/// What follows the header comment of a config alone, made from the text of `envoy/sluice.yaml`
/// from `node:` on.
pub fn body(chain: &str, entries: &[&str]) -> crate::Result<String> {
    let mut out = only_filters(chain, entries);
    for entry in entries {
        if !out.contains(&format!("          - name: {entry}\n")) {
            return Err(format!(
                "envoy/sluice.yaml has no http_filters entry {entry}"
            ));
        }
    }
    if !entries.contains(&"sluice.model_router") {
        out = drop_block(&out, "bootstrap_extensions:")?;
        out = drop_block(&out, "  - name: sluice_internal")?;
        out = drop_block(&out, "  - name: sluice_loopback")?;
    } else if !entries.contains(&"sluice.key_injection.inject") {
        out = set_comment(&out, "  - name: sluice_internal", FALLBACK_ALONE)?;
    }
    Ok(out)
}

/// The comment on the fallback listener where key-injection does not run on it.
const FALLBACK_ALONE: &str =
    "  # Fallback attempts of model-router come back in here (Envoy's internal listener: no port,
  # no outside caller reaches it); the router sends each to the cluster model-router named in
  # x-sluice-cluster. No key-injection here: a fallback attempt carries no provider credential.
";

/// Replaces the comment lines right above the line `head` (at its indentation) with `comment`.
fn set_comment(text: &str, head: &str, comment: &str) -> crate::Result<String> {
    let at = text
        .find(&format!("\n{head}\n"))
        .map(|at| at + 1)
        .ok_or_else(|| format!("envoy/sluice.yaml has no line `{head}`"))?;
    let (before, from) = text.split_at(at);
    let indent = head.len() - head.trim_start().len();
    let marker = format!("{}#", " ".repeat(indent));
    let mut kept: Vec<&str> = before.split_inclusive('\n').collect();
    while kept.last().is_some_and(|l| l.starts_with(&marker)) {
        kept.pop();
    }
    Ok(format!("{}{comment}{from}", kept.concat()))
}

/// Drops the block that starts at the line `head` (a key, or a list item `- …`): that line, the
/// comment lines right above it at its indentation, the lines below indented deeper (for a
/// top-level key, also its `- ` items), and one blank line after it when one precedes it.
fn drop_block(text: &str, head: &str) -> crate::Result<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let at = lines
        .iter()
        .position(|l| l.trim_end() == head)
        .ok_or_else(|| format!("envoy/sluice.yaml has no line `{head}`"))?;
    let indent = head.len() - head.trim_start().len();
    let comment = format!("{}#", " ".repeat(indent));
    let deeper = " ".repeat(indent + 1);
    let item = format!("{}- ", " ".repeat(indent));
    let is_item = head.trim_start().starts_with("- ");
    let line = |i: usize| lines.get(i).copied().unwrap_or_default();
    let mut start = at;
    while start > 0 && line(start - 1).starts_with(&comment) {
        start -= 1;
    }
    let mut end = at + 1;
    while end < lines.len()
        && (line(end).starts_with(&deeper) || (!is_item && line(end).starts_with(&item)))
    {
        end += 1;
    }
    if start > 0 && line(start - 1).trim().is_empty() && line(end).trim().is_empty() {
        end += 1;
    }
    let kept: String = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i < start || *i >= end)
        .map(|(_, l)| *l)
        .collect();
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_a_block_with_its_comments() {
        let text = "a: 1\n\nb:\n- x\n  y: 2\n\nc:\n  # one\n  - name: d\n    e: 1\n  - name: f\n";
        assert_eq!(
            drop_block(text, "b:").unwrap(),
            "a: 1\n\nc:\n  # one\n  - name: d\n    e: 1\n  - name: f\n"
        );
        assert_eq!(
            drop_block(text, "  - name: d").unwrap(),
            "a: 1\n\nb:\n- x\n  y: 2\n\nc:\n  - name: f\n"
        );
        assert!(drop_block(text, "z:").is_err());
        assert_eq!(
            set_comment(text, "  - name: d", "  # two\n").unwrap(),
            "a: 1\n\nb:\n- x\n  y: 2\n\nc:\n  # two\n  - name: d\n    e: 1\n  - name: f\n"
        );
    }
}
