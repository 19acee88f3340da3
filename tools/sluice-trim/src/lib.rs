//! Drops from a built filter module the exports of the proxy-wasm callbacks it names as unused.
//!
//! A filter names them with `sluice_host::unused_callbacks!`, which writes their export names
//! (separated by spaces) into the custom section [`SECTION`]. [`trim`] removes those exports
//! and that section and copies every other section byte for byte. Envoy (proxy-wasm-cpp-host)
//! looks each callback up once when it loads the module and skips, on every request, one that
//! is not exported: each dropped callback is one Wasm entry fewer per request.
//!
//! Only `proxy_on_log` and `proxy_on_done` can be named (their SDK defaults do nothing the host
//! does not assume without them); any other name, or one the module does not export, is
//! refused, so a typo fails the build instead of leaving the entry in place or removing
//! something a filter needs.

use wasm_encoder::{ExportKind, ExportSection, Module, RawSection};
use wasmparser::{ExternalKind, Parser, Payload};

/// The custom section naming the callbacks to drop (see `sluice_host::callbacks`).
pub const SECTION: &str = "sluice.unused_callbacks";

/// The callbacks that may be dropped: those whose SDK default does nothing Envoy does not
/// assume without them (`on_log`: nothing; `on_done`: "done"). Every other export stays, even
/// when a filter seems not to use it (`on_tick` refreshes every filter's cached clock).
const DROPPABLE: [&str; 2] = ["proxy_on_log", "proxy_on_done"];

/// What [`trim`] did to a module.
#[derive(Debug, PartialEq, Eq)]
pub enum Trimmed {
    /// The module names no unused callback (or was trimmed already): left as it is.
    Unchanged,
    /// The new module, and the exports dropped from it.
    Dropped(Vec<u8>, Vec<String>),
}

/// The module `wasm` without the exports its [`SECTION`] names, nor that section.
pub fn trim(wasm: &[u8]) -> Result<Trimmed, String> {
    let Some(names) = unused_names(wasm)? else {
        return Ok(Trimmed::Unchanged);
    };
    for name in &names {
        if !DROPPABLE.contains(&name.as_str()) {
            return Err(format!("{SECTION} names {name}, which cannot be dropped"));
        }
    }
    let mut out = Module::new();
    let mut dropped = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| e.to_string())?;
        match &payload {
            Payload::ExportSection(reader) => {
                let mut exports = ExportSection::new();
                for export in reader.clone() {
                    let export = export.map_err(|e| e.to_string())?;
                    if names.iter().any(|n| n == export.name) {
                        dropped.push(export.name.to_owned());
                    } else {
                        exports.export(export.name, export_kind(export.kind)?, export.index);
                    }
                }
                out.section(&exports);
            }
            Payload::CustomSection(c) if c.name() == SECTION => {}
            _ => {
                if let Some((id, range)) = payload.as_section() {
                    let data = wasm
                        .get(range)
                        .ok_or("a section's range lies outside the module")?;
                    out.section(&RawSection { id, data });
                }
            }
        }
    }
    if let Some(missing) = names.iter().find(|n| !dropped.contains(n)) {
        return Err(format!(
            "{SECTION} names {missing}, which the module does not export"
        ));
    }
    Ok(Trimmed::Dropped(out.finish(), dropped))
}

/// The names a module exports, in order.
pub fn exports(wasm: &[u8]) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::ExportSection(reader) = payload.map_err(|e| e.to_string())? {
            for export in reader {
                names.push(export.map_err(|e| e.to_string())?.name.to_owned());
            }
        }
    }
    Ok(names)
}

/// The names in the module's [`SECTION`], if it has one.
fn unused_names(wasm: &[u8]) -> Result<Option<Vec<String>>, String> {
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::CustomSection(c) = payload.map_err(|e| e.to_string())? {
            if c.name() == SECTION {
                let text =
                    std::str::from_utf8(c.data()).map_err(|_| format!("{SECTION} is not UTF-8"))?;
                let names: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
                return Ok(Some(names));
            }
        }
    }
    Ok(None)
}

fn export_kind(kind: ExternalKind) -> Result<ExportKind, String> {
    Ok(match kind {
        ExternalKind::Func => ExportKind::Func,
        ExternalKind::Table => ExportKind::Table,
        ExternalKind::Memory => ExportKind::Memory,
        ExternalKind::Global => ExportKind::Global,
        ExternalKind::Tag => ExportKind::Tag,
        other => {
            return Err(format!(
                "an export of kind {other:?} this tool does not copy"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use wasm_encoder::{
        CodeSection, CustomSection, Function, FunctionSection, Instruction, TypeSection,
    };

    /// A module of four functions, the first ones exported as `exports`, with `section` as its
    /// unused-callbacks section (none when `None`) and another custom section after it.
    fn module(exports: &[&str], section: Option<&str>) -> Vec<u8> {
        let mut m = Module::new();
        let mut types = TypeSection::new();
        types.ty().function([], []);
        m.section(&types);
        let mut funcs = FunctionSection::new();
        for _ in 0..4 {
            funcs.function(0);
        }
        m.section(&funcs);
        let mut ex = ExportSection::new();
        for (i, name) in exports.iter().enumerate() {
            ex.export(name, ExportKind::Func, i as u32);
        }
        m.section(&ex);
        let mut code = CodeSection::new();
        for _ in 0..4 {
            let mut f = Function::new([]);
            f.instruction(&Instruction::End);
            code.function(&f);
        }
        m.section(&code);
        if let Some(names) = section {
            m.section(&CustomSection {
                name: SECTION.into(),
                data: names.as_bytes().into(),
            });
        }
        m.section(&CustomSection {
            name: "producers".into(),
            data: b"kept".as_slice().into(),
        });
        m.finish()
    }

    const ALL: [&str; 4] = [
        "proxy_on_context_create",
        "proxy_on_request_headers",
        "proxy_on_log",
        "proxy_on_done",
    ];

    #[test]
    fn drops_the_named_exports_and_the_section_only() {
        let wasm = module(&ALL, Some("proxy_on_log  proxy_on_done\n"));
        let Trimmed::Dropped(out, dropped) = trim(&wasm).unwrap() else {
            panic!("nothing dropped");
        };
        assert_eq!(dropped, ["proxy_on_log", "proxy_on_done"]);
        assert_eq!(
            exports(&out).unwrap(),
            ["proxy_on_context_create", "proxy_on_request_headers"]
        );
        // Every other section as it was: the same module without the section and the two
        // exports (their functions stay).
        let want = module(&ALL[..2], None);
        assert_eq!(out, want);
        // Trimmed once, the module has nothing more to drop.
        assert_eq!(trim(&out).unwrap(), Trimmed::Unchanged);
    }

    #[test]
    fn leaves_a_module_without_the_section_alone() {
        assert_eq!(trim(&module(&ALL, None)).unwrap(), Trimmed::Unchanged);
    }

    #[test]
    fn refuses_what_cannot_or_need_not_be_dropped() {
        for (names, want) in [
            ("proxy_on_context_create", "cannot be dropped"),
            ("proxy_on_memory_allocate", "cannot be dropped"),
            ("proxy_on_tick", "cannot be dropped"),
            ("proxy_on_request_headers", "cannot be dropped"),
            ("memory", "cannot be dropped"),
        ] {
            let err = trim(&module(&ALL, Some(names))).unwrap_err();
            assert!(err.contains(names) && err.contains(want), "{names}: {err}");
        }
        let err = trim(&module(&ALL[..3], Some("proxy_on_done"))).unwrap_err();
        assert!(
            err.contains("proxy_on_done") && err.contains("does not export"),
            "{err}"
        );
        assert!(trim(b"not wasm").is_err());
    }
}
