//! Packs each filter's `.wasm` as OCI image layouts in the two forms Istio pulls, without
//! Docker and reproducibly (the same `.wasm` gives the same digests), and renders the Istio
//! manifests with those digests.
//!
//! Per filter, one layout `<out>/<filter>/` (`oci-layout`, `index.json`, `blobs/sha256/…`)
//! with two tags:
//! - `<tag>`: the *compat* image: one `application/vnd.oci.image.layer.v1.tar+gzip` layer whose
//!   tar holds `plugin.wasm`, and an OCI image config (`os: wasip1`, `architecture: wasm`, the
//!   layer's diff id, no timestamp);
//! - `<tag>-artifact`: the Wasm *artifact*: exactly two layers,
//!   `application/vnd.module.wasm.config.v1+json` (the runtime config: `envoy_proxy`, the ABI,
//!   the root id) and `application/vnd.module.wasm.content.layer.v1+wasm` (the module itself).
//!
//! Reproducible: the tar entry has a fixed mode (0644), uid/gid 0, no owner names and mtime 0;
//! the gzip header has mtime 0 and no file name; the JSON documents hold no timestamp and are
//! serialised the same way every time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub type Result<T> = std::result::Result<T, String>;

/// The filters: image name (the manifests' `oci://…/<name>`) and `.wasm` file stem (also the
/// root id the filter registers).
pub const FILTERS: [(&str, &str); 5] = [
    ("token-count", "token_count"),
    ("prompt-template", "prompt_template"),
    ("moderation", "moderation"),
    ("key-injection", "key_injection"),
    ("model-router", "model_router"),
];

pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const IMAGE_CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const TAR_GZIP_LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const WASM_CONFIG_TYPE: &str = "application/vnd.module.wasm.config.v1+json";
pub const WASM_LAYER_TYPE: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
/// The tag suffix of the two-layer artifact form.
pub const ARTIFACT_SUFFIX: &str = "-artifact";
/// The file name the compat layer's tar holds (what Istio looks for).
pub const PLUGIN_FILE: &str = "plugin.wasm";

/// One image (one tag) of a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub tag: String,
    /// `compat` or `artifact`.
    pub form: &'static str,
    /// `sha256:<hex>` of the manifest: what a registry serves it under, and the hex part is
    /// what a WasmPlugin's `sha256` must hold for an `oci://` url (Istio compares it with the
    /// manifest digest it pulls).
    pub digest: String,
    /// Bytes of the manifest, config and layers together.
    pub size: u64,
    /// Bytes of the layer that carries the module (gzip-compressed tar, or the raw module).
    pub layer_size: u64,
}

/// What was built for one filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub filter: String,
    pub wasm_sha256: String,
    pub wasm_size: u64,
    pub layout: PathBuf,
    pub images: Vec<Image>,
}

impl Built {
    /// The compat image (the one the manifests point at).
    pub fn compat(&self) -> Option<&Image> {
        self.images.iter().find(|i| i.form == "compat")
    }

    pub fn to_json(&self) -> Value {
        json!({
            "filter": self.filter,
            "wasm_sha256": self.wasm_sha256,
            "wasm_size": self.wasm_size,
            "layout": self.layout.display().to_string(),
            "images": self.images.iter().map(|i| json!({
                "tag": i.tag,
                "form": i.form,
                "digest": i.digest,
                "size": i.size,
                "layer_size": i.layer_size,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A blob: its bytes and the descriptor parts that name it.
struct Blob {
    bytes: Vec<u8>,
    digest: String,
}

impl Blob {
    fn new(bytes: Vec<u8>) -> Blob {
        let digest = format!("sha256:{}", sha256_hex(&bytes));
        Blob { bytes, digest }
    }

    fn json(value: &Value) -> Result<Blob> {
        serde_json::to_vec(value)
            .map(Blob::new)
            .map_err(|e| format!("cannot serialise JSON: {e}"))
    }

    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn descriptor(&self, media_type: &str) -> Value {
        json!({"mediaType": media_type, "digest": self.digest, "size": self.size()})
    }

    fn descriptor_titled(&self, media_type: &str, title: &str) -> Value {
        json!({
            "mediaType": media_type,
            "digest": self.digest,
            "size": self.size(),
            "annotations": {"org.opencontainers.image.title": title},
        })
    }
}

/// The tar holding `plugin.wasm` (fixed mode, owner and mtime), uncompressed.
pub fn plugin_tar(wasm: &[u8]) -> Result<Vec<u8>> {
    let mut header = tar::Header::new_ustar();
    header.set_size(wasm.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    builder
        .append_data(&mut header, PLUGIN_FILE, wasm)
        .map_err(|e| format!("cannot write the tar: {e}"))?;
    builder
        .into_inner()
        .map_err(|e| format!("cannot finish the tar: {e}"))
}

/// gzip with a fixed header (mtime 0, no name) at a fixed level.
pub fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(bytes)
        .map_err(|e| format!("cannot gzip: {e}"))?;
    encoder.finish().map_err(|e| format!("cannot gzip: {e}"))
}

/// Where a layout keeps the blob of `digest` (`sha256:<hex>` or the hex alone).
pub fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// Writes a blob under `blobs/sha256/` of a layout.
fn write_blob(layout: &Path, blob: &Blob) -> Result<()> {
    let path = blob_path(layout, &blob.digest);
    std::fs::write(&path, &blob.bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The compat image's blobs: manifest, config, layer.
fn compat_image(wasm: &[u8]) -> Result<(Blob, Vec<Blob>, u64)> {
    let tar = plugin_tar(wasm)?;
    let diff_id = format!("sha256:{}", sha256_hex(&tar));
    let layer = Blob::new(gzip(&tar)?);
    let config = Blob::json(&json!({
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))?;
    let manifest = Blob::json(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": config.descriptor(IMAGE_CONFIG_TYPE),
        "layers": [layer.descriptor(TAR_GZIP_LAYER_TYPE)],
    }))?;
    let layer_size = layer.size();
    Ok((manifest, vec![config, layer], layer_size))
}

/// The two-layer artifact's blobs: manifest, runtime config, module.
fn artifact_image(wasm: &[u8], root_id: &str) -> Result<(Blob, Vec<Blob>, u64)> {
    let config = Blob::json(&json!({
        "type": "envoy_proxy",
        "abiVersions": ["v0.2.1"],
        "config": {"rootIds": [root_id]},
    }))?;
    let module = Blob::new(wasm.to_vec());
    let manifest = Blob::json(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": config.descriptor(WASM_CONFIG_TYPE),
        "layers": [
            config.descriptor_titled(WASM_CONFIG_TYPE, "runtime-config.json"),
            module.descriptor_titled(WASM_LAYER_TYPE, PLUGIN_FILE),
        ],
    }))?;
    let layer_size = module.size();
    Ok((manifest, vec![config, module], layer_size))
}

/// Builds `<out>/<filter>/` from one module (the folder is replaced whole).
pub fn build_layout(
    wasm: &[u8],
    filter: &str,
    root_id: &str,
    tag: &str,
    out: &Path,
) -> Result<Built> {
    let layout = out.join(filter);
    if layout.exists() {
        std::fs::remove_dir_all(&layout)
            .map_err(|e| format!("cannot clear {}: {e}", layout.display()))?;
    }
    std::fs::create_dir_all(layout.join("blobs/sha256"))
        .map_err(|e| format!("cannot create {}: {e}", layout.display()))?;
    let mut index_entries = Vec::new();
    let mut images = Vec::new();
    let forms = [
        ("compat", tag.to_owned(), compat_image(wasm)?),
        (
            "artifact",
            format!("{tag}{ARTIFACT_SUFFIX}"),
            artifact_image(wasm, root_id)?,
        ),
    ];
    for (form, image_tag, (manifest, blobs, layer_size)) in forms {
        let mut size = manifest.size();
        for blob in &blobs {
            write_blob(&layout, blob)?;
            size += blob.size();
        }
        write_blob(&layout, &manifest)?;
        index_entries.push(json!({
            "mediaType": MANIFEST_TYPE,
            "digest": manifest.digest,
            "size": manifest.size(),
            "annotations": {"org.opencontainers.image.ref.name": image_tag},
        }));
        images.push(Image {
            tag: image_tag,
            form,
            digest: manifest.digest.clone(),
            size,
            layer_size,
        });
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": index_entries,
    });
    let index_text =
        serde_json::to_vec(&index).map_err(|e| format!("cannot serialise index.json: {e}"))?;
    std::fs::write(layout.join("index.json"), index_text)
        .map_err(|e| format!("cannot write index.json: {e}"))?;
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .map_err(|e| format!("cannot write oci-layout: {e}"))?;
    Ok(Built {
        filter: filter.to_owned(),
        wasm_sha256: sha256_hex(wasm),
        wasm_size: wasm.len() as u64,
        layout,
        images,
    })
}

/// Builds every filter's layout from `<wasm_dir>/<stem>.wasm` into `<out>/<filter>/` and writes
/// `<out>/images.json` (what was built: digests and sizes).
pub fn build_all(wasm_dir: &Path, out: &Path, tag: &str) -> Result<Vec<Built>> {
    check_tag(tag)?;
    let mut all = Vec::new();
    for (filter, stem) in FILTERS {
        let path = wasm_dir.join(format!("{stem}.wasm"));
        let wasm = std::fs::read(&path)
            .map_err(|e| format!("cannot read {} (run `make wasm`): {e}", path.display()))?;
        all.push(build_layout(&wasm, filter, stem, tag, out)?);
    }
    let summary = Value::Array(all.iter().map(Built::to_json).collect());
    let text = serde_json::to_string_pretty(&summary)
        .map_err(|e| format!("cannot serialise images.json: {e}"))?;
    std::fs::write(out.join("images.json"), text + "\n")
        .map_err(|e| format!("cannot write images.json: {e}"))?;
    Ok(all)
}

/// A tag as the registry API takes it: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn check_tag(tag: &str) -> Result<()> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if first_ok && rest_ok && tag.len() <= 128 - ARTIFACT_SUFFIX.len() {
        Ok(())
    } else {
        Err(format!("not a valid image tag: {tag:?}"))
    }
}

/// The digest (`sha256:<hex>`) of the image tagged `tag` in a layout, read from its
/// `index.json`, after checking that the manifest blob there hashes to it.
pub fn layout_digest(layout: &Path, tag: &str) -> Result<String> {
    let index_path = layout.join("index.json");
    let text = std::fs::read(&index_path)
        .map_err(|e| format!("cannot read {} (run `make oci`): {e}", index_path.display()))?;
    let index: Value = serde_json::from_slice(&text)
        .map_err(|e| format!("{}: not JSON: {e}", index_path.display()))?;
    let digest = index
        .get("manifests")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|m| {
            m.pointer("/annotations/org.opencontainers.image.ref.name")
                .and_then(Value::as_str)
                == Some(tag)
        })
        .and_then(|m| m.get("digest").and_then(Value::as_str))
        .ok_or_else(|| {
            format!(
                "{}: no image tagged {tag:?} (build it with `make oci TAG={tag}`)",
                index_path.display()
            )
        })?;
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("{}: not a sha256 digest: {digest}", index_path.display()))?;
    let path = blob_path(layout, hex);
    let blob = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if sha256_hex(&blob) != hex {
        return Err(format!(
            "{}: content does not match its name",
            path.display()
        ));
    }
    Ok(digest.to_owned())
}

/// The variables the Istio manifest templates use: `REGISTRY`, `TAG`, and per filter
/// `SHA256_<FILTER>` (e.g. `SHA256_KEY_INJECTION`): the hex manifest digest of its compat image
/// in `<oci>/<filter>/`. Istio compares a WasmPlugin's `sha256` with the digest of the image
/// manifest it pulls when the url is `oci://` (with `https://` or `file://`, with the module's).
pub fn manifest_vars(oci: &Path, registry: &str, tag: &str) -> Result<BTreeMap<String, String>> {
    check_tag(tag)?;
    let mut vars = BTreeMap::new();
    vars.insert(
        "REGISTRY".to_owned(),
        registry.trim_end_matches('/').to_owned(),
    );
    vars.insert("TAG".to_owned(), tag.to_owned());
    for (filter, _) in FILTERS {
        let digest = layout_digest(&oci.join(filter), tag)?;
        let name = format!("SHA256_{}", filter.replace('-', "_").to_uppercase());
        vars.insert(name, digest.trim_start_matches("sha256:").to_owned());
    }
    Ok(vars)
}

/// Replaces every `${NAME}` whose NAME is in `vars`; a placeholder left unreplaced is an error.
pub fn render<K: AsRef<str>>(template: &str, vars: &BTreeMap<K, String>) -> Result<String> {
    let mut out = template.to_owned();
    for (name, value) in vars {
        out = out.replace(&format!("${{{}}}", name.as_ref()), value);
    }
    match out.find("${") {
        Some(at) => {
            let rest = out.get(at..).unwrap_or_default();
            let end = rest.find('}').map_or(rest.len(), |e| e + 1);
            Err(format!(
                "unrendered placeholder {}",
                rest.get(..end).unwrap_or(rest)
            ))
        }
        None => Ok(out),
    }
}

/// Renders every `*.yaml` of `templates` into `out` (same file names).
pub fn render_dir(
    templates: &Path,
    out: &Path,
    vars: &BTreeMap<String, String>,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut names: Vec<PathBuf> = std::fs::read_dir(templates)
        .map_err(|e| format!("cannot read {}: {e}", templates.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    names.sort();
    let mut written = Vec::new();
    for path in names {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let rendered = render(&text, vars).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path
            .file_name()
            .ok_or_else(|| format!("no file name: {}", path.display()))?;
        let target = out.join(name);
        std::fs::write(&target, rendered)
            .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        written.push(target);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_module_gives_the_same_bytes() {
        let wasm = b"\0asm\x01\0\0\0 not really a module";
        assert_eq!(plugin_tar(wasm).unwrap(), plugin_tar(wasm).unwrap());
        let gz = gzip(&plugin_tar(wasm).unwrap()).unwrap();
        // gzip header: magic, method, flags 0 (no name), mtime 0.
        assert_eq!(&gz[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
        let (a, _, _) = compat_image(wasm).unwrap();
        let (b, _, _) = compat_image(wasm).unwrap();
        assert_eq!(a.digest, b.digest);
        let (c, _, _) = compat_image(b"\0asm\x01\0\0\0 another").unwrap();
        assert_ne!(a.digest, c.digest);
    }

    #[test]
    fn the_tar_holds_plugin_wasm_with_fixed_metadata() {
        let wasm = b"\0asm\x01\0\0\0 bytes";
        let tar = plugin_tar(wasm).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str(), Some(PLUGIN_FILE));
        let h = entry.header();
        assert_eq!(
            (h.mode().unwrap(), h.uid().unwrap(), h.gid().unwrap()),
            (0o644, 0, 0)
        );
        assert_eq!(h.mtime().unwrap(), 0);
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut body).unwrap();
        assert_eq!(body, wasm);
        assert!(entries.next().is_none());
    }

    #[test]
    fn tags_and_placeholders_are_checked() {
        assert!(check_tag("0.1.0").is_ok());
        assert!(check_tag("-x").is_err());
        assert!(check_tag("a/b").is_err());
        let mut vars = BTreeMap::new();
        vars.insert("TAG".to_owned(), "1".to_owned());
        assert_eq!(render("t:${TAG}", &vars).unwrap(), "t:1");
        assert!(render("${TAG} ${NOPE}", &vars)
            .unwrap_err()
            .contains("${NOPE}"));
    }
}
