//! The shipped configs made from `envoy/sluice.yaml`, so that they cannot drift from the chain.
//! `make configs` (`sluice-dev configs`) writes them; a test checks that each checked-in file
//! is what it would write (tests/configs.rs).
//!
//! - `envoy/alone/*.yaml`, each filter alone ([`crate::alone`]), and `envoy/sluice-ecds.yaml`,
//!   the hot-swap layout ([`crate::ecds::layout_body`]): everything after the file's header
//!   comment is made from the chain (from `node:` on); the header comment stays as written.
//!
//! The files stay whole, standalone configs (users read them, `envsubst` them and copy blocks
//! out of them): nothing is included when Envoy loads them.

use crate::{alone, ecds, paths};

/// The command that rewrites them.
pub const REGENERATE: &str = "make configs";

/// The chain every generated config is made from.
pub const CHAIN: &str = "envoy/sluice.yaml";

/// The hot-swap layout.
pub const HOT_SWAP: &str = "envoy/sluice-ecds.yaml";

/// How a generated file is made from the chain.
enum Made {
    /// Everything after its header comment: the chain with only a filter's entries.
    Alone(&'static alone::Alone),
    /// Everything after its header comment: the chain with every Sluice entry through ECDS.
    HotSwap,
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
/// did, file by file.
pub fn write_all() -> crate::Result<Vec<String>> {
    let chain = read(CHAIN)?;
    let mut done = Vec::new();
    for file in generated() {
        let full = paths::repo().join(&file.path);
        let old = std::fs::read_to_string(&full).ok();
        let text = file.make(&chain, old.as_deref())?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
