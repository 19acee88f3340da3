//! The README stands alone: it cites nothing outside the repository (no `../` paths, no
//! absolute paths), and every relative link in it points at a file of the repo. It tells where
//! `make run` keeps its logs, that the mock has `--help`, and about the client examples.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use sluice_harness::paths;

#[test]
fn readme_cites_nothing_outside_the_repo() {
    let repo = paths::repo();
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    for (n, line) in readme.lines().enumerate() {
        for outside in ["../", "/work/", "/shared/"] {
            assert!(
                !line.contains(outside),
                "README.md:{}: cites {outside:?}, outside the repo: {line}",
                n + 1
            );
        }
    }
    // Markdown links: anchors and web addresses, or files that exist in the repo.
    let mut rest = readme.as_str();
    while let Some(at) = rest.find("](") {
        let tail = &rest[at + 2..];
        let target = &tail[..tail.find(')').unwrap_or(tail.len())];
        if !(target.starts_with('#') || target.starts_with("https://")) {
            let file = target.split('#').next().unwrap();
            assert!(
                !file.starts_with('/') && repo.join(file).exists(),
                "README.md links to {target:?}, not a file of the repo"
            );
        }
        rest = tail;
    }
}

#[test]
fn readme_documents_the_run_folder_the_mock_help_and_the_examples() {
    let readme = std::fs::read_to_string(paths::repo().join("README.md")).unwrap();
    for want in [
        ".sluice/run/",
        "SIGTERM",
        "mock-provider --help",
        "examples/clients/",
        "SLUICE_KEY",
        "anthropic_python.py",
    ] {
        assert!(readme.contains(want), "README.md does not mention {want:?}");
    }
}
