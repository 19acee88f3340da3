//! The shipped configs made from `envoy/sluice.yaml`, so that they cannot drift from the chain.
//! `make configs` (`sluice-dev configs`) writes them; tests check that each checked-in file is
//! what it would write (tests/configs.rs; the Istio patch in tests/istio_examples.rs).
//!
//! - `envoy/alone/*.yaml`, each filter alone ([`crate::alone`]), `envoy/sluice-ecds.yaml`, the
//!   hot-swap layout ([`crate::ecds::layout_body`]), and `envoy/sluice-ratelimit.yaml`, the chain
//!   plus Envoy's global rate limit ([`crate::global_limits::layout_body`]: its additions are
//!   kept there): everything after the file's header comment is made from the chain (from
//!   `node:` on); the header comment stays as written.
//! - `envoy/bare.yaml`, `envoy/own-envoy.yaml` and the Istio EnvoyFilter
//!   `examples/istio/sluice-local-replies.yaml`: only the body of their one
//!   `local_reply_config:` (the mappers of Envoy's own local replies) is the chain's, indented
//!   as the file has that key; the rest of each file, the comments above the key included, is
//!   its own.
//!
//! The files stay whole, standalone configs (users read them, `envsubst` them and copy blocks
//! out of them): nothing is included when Envoy loads them.

use crate::{alone, ecds, global_limits, paths};

/// The command that rewrites them.
pub const REGENERATE: &str = "make configs";

/// The chain every generated config is made from.
pub const CHAIN: &str = "envoy/sluice.yaml";

/// The configs that carry the chain's local-reply mappers and are otherwise their own.
pub const LOCAL_REPLIES: [&str; 3] = [
    "envoy/bare.yaml",
    "envoy/own-envoy.yaml",
    "examples/istio/sluice-local-replies.yaml",
];

/// The hot-swap layout.
pub const HOT_SWAP: &str = "envoy/sluice-ecds.yaml";

/// The chain plus Envoy's global rate limit (token limits across many Envoys).
pub const GLOBAL_LIMIT: &str = "envoy/sluice-ratelimit.yaml";

/// How a generated file is made from the chain.
enum Made {
    /// Everything after its header comment: the chain with only a filter's entries.
    Alone(&'static alone::Alone),
    /// Everything after its header comment: the chain with every Sluice entry through ECDS.
    HotSwap,
    /// Everything after its header comment: the chain plus Envoy's global rate limit.
    GlobalLimit,
    /// The body of its `local_reply_config:` only.
    LocalReplies,
}

/// One file `make configs` writes (a path relative to the repo).
pub struct Generated {
    pub path: String,
    made: Made,
}

impl Generated {
    /// What is made from the chain, for the messages.
    pub fn what(&self) -> String {
        match &self.made {
            Made::Alone(a) => format!(
                "below its header comment: {CHAIN} with only {}",
                a.entries.join(", ")
            ),
            Made::HotSwap => format!(
                "below its header comment: {CHAIN} with each Sluice filter entry through \
                 config_discovery"
            ),
            Made::GlobalLimit => format!(
                "below its header comment: {CHAIN} plus Envoy's global rate limit (its additions: \
                 tests/harness/src/global_limits.rs)"
            ),
            Made::LocalReplies => format!("its local_reply_config mappers: {CHAIN}'s"),
        }
    }

    /// The file's text as it should be, from the chain's text and the file's current text
    /// (`None`: no file yet; a file made whole gets a one-line header).
    pub fn make(&self, chain: &str, old: Option<&str>) -> crate::Result<String> {
        let header = |default: String| -> crate::Result<String> {
            match old {
                Some(text) => split_header(text)
                    .map(|(header, _)| header.to_owned())
                    .map_err(|e| format!("{}: {e}", self.path)),
                None => Ok(default),
            }
        };
        let (_, chain_body) = split_header(chain).map_err(|e| format!("{CHAIN}: {e}"))?;
        match &self.made {
            Made::Alone(a) => {
                let header = header(format!(
                    "# {} alone: {CHAIN} with only {}.\n",
                    a.file.trim_end_matches(".yaml"),
                    a.entries.join(", ")
                ))?;
                Ok(format!("{header}{}", alone::body(chain_body, a.entries)?))
            }
            Made::HotSwap => {
                let header = header(format!(
                    "# Sluice, the hot-swap layout: {CHAIN} with every Sluice filter through \
                     ECDS.\n"
                ))?;
                Ok(format!("{header}{}", ecds::layout_body(chain_body)?))
            }
            Made::GlobalLimit => {
                let header = header(format!(
                    "# Sluice, global token limits: {CHAIN} plus Envoy's global rate limit.\n"
                ))?;
                Ok(format!(
                    "{header}{}",
                    global_limits::layout_body(chain_body)?
                ))
            }
            Made::LocalReplies => {
                let text = old.ok_or_else(|| format!("{}: no such file", self.path))?;
                let mappers = local_replies(chain).map_err(|e| format!("{CHAIN}: {e}"))?;
                set_local_replies(text, &mappers).map_err(|e| format!("{}: {e}", self.path))
            }
        }
    }
}

/// Every file `make configs` writes.
pub fn generated() -> Vec<Generated> {
    let mut all: Vec<Generated> = alone::CONFIGS
        .iter()
        .map(|a| Generated {
            path: a.path(),
            made: Made::Alone(a),
        })
        .collect();
    all.push(Generated {
        path: HOT_SWAP.to_owned(),
        made: Made::HotSwap,
    });
    all.push(Generated {
        path: GLOBAL_LIMIT.to_owned(),
        made: Made::GlobalLimit,
    });
    all.extend(LOCAL_REPLIES.iter().map(|path| Generated {
        path: (*path).to_owned(),
        made: Made::LocalReplies,
    }));
    all
}

/// Why the checked-in `file` is not what `make configs` writes, if it is not.
pub fn stale(file: &Generated) -> crate::Result<Option<String>> {
    let chain = read(CHAIN)?;
    let old = read(&file.path)?;
    let want = file.make(&chain, Some(&old))?;
    if old == want {
        return Ok(None);
    }
    let (mut old_lines, mut want_lines) = (old.lines(), want.lines());
    let mut line = 1;
    let (have, should) = loop {
        match (old_lines.next(), want_lines.next()) {
            (Some(a), Some(b)) if a == b => line += 1,
            (a, b) => break (a, b),
        }
    };
    let show = |l: Option<&str>| l.map_or("the end of the file".to_owned(), |l| format!("{l:?}"));
    let how = match (have, should) {
        (None, None) => "its line ends differ".to_owned(),
        _ => format!(
            "from line {line} it has {}, not {}",
            show(have),
            show(should)
        ),
    };
    Ok(Some(format!(
        "{}: not what `{REGENERATE}` writes ({}); {how}",
        file.path,
        file.what()
    )))
}

/// Rewrites every generated file from the chain (keeping what is each file's own); says what it
/// did, file by file. Every file is made before any is written: a chain one of them cannot be
/// made from (an anchor gone) leaves them all as they were.
pub fn write_all() -> crate::Result<Vec<String>> {
    let chain = read(CHAIN)?;
    let mut made = Vec::new();
    for file in generated() {
        let full = paths::repo().join(&file.path);
        let old = std::fs::read_to_string(&full).ok();
        let text = file.make(&chain, old.as_deref())?;
        made.push((file, full, old, text));
    }
    let mut done = Vec::new();
    for (file, full, old, text) in made {
        if old.as_deref() == Some(text.as_str()) {
            done.push(format!("{}: unchanged", file.path));
        } else {
            if let Some(dir) = full.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            std::fs::write(&full, text).map_err(|e| format!("cannot write {}: {e}", file.path))?;
            done.push(format!("{}: written", file.path));
        }
    }
    Ok(done)
}

fn read(path: &str) -> crate::Result<String> {
    std::fs::read_to_string(paths::repo().join(path))
        .map_err(|e| format!("cannot read {path}: {e}"))
}

/// A config's leading comment (comment and blank lines) and the rest, which starts at `node:`.
pub fn split_header(text: &str) -> crate::Result<(&str, &str)> {
    let at = if text.starts_with("node:") {
        0
    } else {
        text.find("\nnode:")
            .map(|at| at + 1)
            .ok_or("no top-level `node:`")?
    };
    let (header, rest) = text.split_at(at);
    match header
        .lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        Some(line) => Err(format!(
            "only comment lines may come before `node:`, not {line:?}"
        )),
        None => Ok((header, rest)),
    }
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// The line index of the one `local_reply_config:` key with a body (an anchor after it is
/// fine; `local_reply_config: *alias` lines are not blocks), and the index past its body: the
/// lines below it indented deeper, blank lines between them included.
fn local_reply_span(lines: &[&str]) -> crate::Result<(usize, usize)> {
    let is_key = |l: &&str| {
        let t = l.trim();
        t == "local_reply_config:"
            || t.strip_prefix("local_reply_config: &")
                .is_some_and(|anchor| !anchor.is_empty() && !anchor.contains(' '))
    };
    let keys: Vec<usize> = (0..lines.len())
        .filter(|&i| lines.get(i).is_some_and(is_key))
        .collect();
    let &[at] = keys.as_slice() else {
        return Err(format!(
            "{} `local_reply_config:` blocks, not one",
            keys.len()
        ));
    };
    let key_indent = lines.get(at).map_or(0, |l| indent(l));
    let mut end = at + 1;
    for (i, line) in lines.iter().enumerate().skip(at + 1) {
        if line.trim().is_empty() {
            continue;
        }
        if indent(line) <= key_indent {
            break;
        }
        end = i + 1;
    }
    if end == at + 1 {
        return Err("its `local_reply_config:` is empty".to_owned());
    }
    Ok((at, end))
}

/// The body of the chain's `local_reply_config:` (the lines below the key), at the chain's
/// indentation, and that of the key.
pub fn local_replies(chain: &str) -> crate::Result<(String, usize)> {
    let lines: Vec<&str> = chain.split_inclusive('\n').collect();
    let (at, end) = local_reply_span(&lines)?;
    let body = lines.get(at + 1..end).unwrap_or_default().concat();
    Ok((body, lines.get(at).map_or(0, |l| indent(l))))
}

/// `text` with the body of its `local_reply_config:` replaced by `mappers` (a body and the
/// indentation of its key, as [`local_replies`] gives them), re-indented to `text`'s key.
pub fn set_local_replies(text: &str, mappers: &(String, usize)) -> crate::Result<String> {
    let (body, from) = mappers;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let (at, end) = local_reply_span(&lines)?;
    let to = lines.get(at).map_or(0, |l| indent(l));
    let mut out = lines.get(..=at).unwrap_or_default().concat();
    for line in body.split_inclusive('\n') {
        if line.trim().is_empty() {
            out.push_str(if line.ends_with('\n') { "\n" } else { "" });
        } else {
            // Every line of the body is indented deeper than its key (local_reply_span).
            out.push_str(&" ".repeat(to));
            out.push_str(line.get(*from..).unwrap_or(line));
        }
    }
    out.push_str(&lines.get(end..).unwrap_or_default().concat());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAIN_TEXT: &str = "node: {}\nhcm:\n  # the mappers\n  local_reply_config: &lr\n    mappers:\n    # one\n    - a: 1\n\n      b: 2\n\n  route_config: {}\ninner:\n  local_reply_config: *lr\n";

    #[test]
    fn takes_the_one_local_reply_block() {
        let (body, indent) = local_replies(CHAIN_TEXT).unwrap();
        assert_eq!(body, "    mappers:\n    # one\n    - a: 1\n\n      b: 2\n");
        assert_eq!(indent, 2);
        assert!(local_replies("a:\n  local_reply_config: *lr\n").is_err());
        assert!(local_replies("a:\n  local_reply_config:\nb: 1\n").is_err());
        let two = "a:\n  local_reply_config:\n    x: 1\nb:\n  local_reply_config:\n    x: 1\n";
        assert!(local_replies(two)
            .unwrap_err()
            .contains("2 `local_reply_config:`"));
    }

    #[test]
    fn writes_it_at_the_targets_indentation_keeping_the_rest() {
        let mappers = local_replies(CHAIN_TEXT).unwrap();
        let target = "# mine\nspec:\n  value:\n      # my words\n      local_reply_config:\n        old: 1\n\n        older: 2\n      other: 3\n";
        let out = set_local_replies(target, &mappers).unwrap();
        assert_eq!(
            out,
            "# mine\nspec:\n  value:\n      # my words\n      local_reply_config:\n        mappers:\n        # one\n        - a: 1\n\n          b: 2\n      other: 3\n"
        );
        // The same YAML, wherever it stands.
        let parse = |t: &str| serde_norway::from_str::<serde_json::Value>(t).unwrap();
        assert_eq!(
            parse(&out)["spec"]["value"]["local_reply_config"],
            parse(CHAIN_TEXT)["hcm"]["local_reply_config"]
        );
        // An anchor on the target's key stays; a shallower target works too.
        let anchored = "a:\n local_reply_config: &x\n  y: 1\n";
        assert_eq!(
            set_local_replies(anchored, &mappers).unwrap(),
            "a:\n local_reply_config: &x\n   mappers:\n   # one\n   - a: 1\n\n     b: 2\n"
        );
    }

    #[test]
    fn a_header_is_comments_only() {
        assert_eq!(
            split_header("# a\n\n# b\nnode:\n  x\n").unwrap(),
            ("# a\n\n# b\n", "node:\n  x\n")
        );
        assert_eq!(split_header("node:\n").unwrap(), ("", "node:\n"));
        assert!(split_header("x: 1\nnode:\n").is_err());
    }
}
