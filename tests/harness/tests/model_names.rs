//! The Claude model names users copy (README, examples, SDK clients, what `make run` prints,
//! the mock's model list, the benchmark's) are ones the installed `anthropic` SDK knows and
//! does not call deprecated.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::process::Command;

use sluice_harness::paths;

/// `claude-…` model names in a text (globs such as `claude-*` are not names).
fn claude_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("claude-") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
            .unwrap_or(tail.len());
        let name = tail[..end].trim_end_matches(['-', '.']);
        if name.len() > "claude-".len() {
            names.push(name.to_owned());
        }
        rest = &tail["claude-".len()..];
    }
    names
}

#[test]
fn claude_model_names_are_current_for_the_installed_sdk() {
    let sdk = Command::new(paths::python())
        .args([
            "-c",
            "import json, typing, anthropic\n\
             from anthropic._data import DEPRECATED_MODELS\n\
             known = [m for m in typing.get_args(typing.get_args(anthropic.types.Model)[0])]\n\
             print(json.dumps({'known': known, 'deprecated': list(DEPRECATED_MODELS)}))",
        ])
        .output()
        .unwrap();
    assert!(sdk.status.success(), "{sdk:?}");
    let lists: serde_json::Value = serde_json::from_slice(&sdk.stdout).unwrap();
    let list = |k: &str| -> Vec<String> {
        lists[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let (known, deprecated) = (list("known"), list("deprecated"));
    assert!(known.len() > 3 && !deprecated.is_empty(), "{lists}");

    let repo = paths::repo();
    let mut files = vec![
        repo.join("README.md"),
        repo.join("tests/harness/src/bin/sluice-dev.rs"),
        repo.join("tests/harness/src/bench.rs"),
        repo.join("tests/mock-provider/src/main.rs"),
    ];
    for dir in ["examples/clients", "tests/clients"] {
        files.extend(
            std::fs::read_dir(repo.join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_file()),
        );
    }
    let mut seen = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for name in claude_names(&text) {
            seen += 1;
            assert!(
                known.contains(&name) && !deprecated.contains(&name),
                "{}: {name} is not a current model of the installed anthropic SDK \
                 (known: {known:?}; deprecated: {deprecated:?})",
                file.display()
            );
        }
    }
    assert!(seen > 0, "no Claude model names found in {files:?}");
}
