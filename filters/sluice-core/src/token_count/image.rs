//! Image parts of a chat request, priced as OpenAI bills them: the image's size read from a
//! `data:` URL's header (PNG, JPEG, GIF, WebP; the image itself is never decoded, and of its
//! base64 text only the windows holding the header are), and the token cost of an image of that
//! size on a model.
//!
//! Two pricing schemes (OpenAI, "Images and vision" guide, section "Calculating costs", as
//! quoted in the OpenAI developer forum threads "GPT-5-mini image input token calculation
//! discrepancy with official FAQ formula" and "Vision Pricing calculator: inaccurate
//! resizing/rounding vs API costs"):
//!
//! * **Tiles** (gpt-4o, gpt-4o-mini, gpt-4.1, gpt-4.5, gpt-4-turbo / vision, o1, o3): `detail:
//!   low` costs the base; otherwise the image is fit into 2048×2048, its shortest side scaled
//!   down to 768, and each 512-px tile covering it costs `per_tile`, plus the base.
//! * **Patches** (gpt-4.1-mini, gpt-4.1-nano, o4-mini, gpt-5-mini, gpt-5-nano): the 32-px
//!   patches covering the image, shrunk by the documented procedure when over 1536, times a
//!   per-model multiplier. `detail` has no effect.
//!
//! What the recorded bills (`testdata/billing`, tests below) settle, image cost = billed
//! prompt tokens − text recipe (3 per message + role + text + 3 priming; 2 priming on gpt-5):
//!
//! * EXACT, tiles 85/170: gpt-4o 3008×2000 PNG → 1105 (1119 − 14); gpt-4-vision-preview
//!   2560×1669 JPEG → 1105 (1118 − 13); gpt-4-vision-preview 800×400 (an http URL whose path
//!   names the size) → 425 (438 − 13).
//! * EXACT, patches `ceil(patches × multiplier) + 1`: gpt-4.1-nano (×2.46) 540×360 JPEG → 503
//!   (515 − 12; 204 patches, 501.84 → 502, + 1) and 16×16 PNG → 4 (24 − 20); gpt-5-nano (×1.5)
//!   16×16 PNG → 3 (22 − 19). The "+ 1" per image is not in the docs; it is what these bills
//!   show (and what the forum's 128×64 measurements on gpt-4.1-mini/-nano and o4-mini show).
//! * INFERENCE: the Wikimedia boardwalk photo (an http URL; 2560 px wide, taken to be 2560×1669
//!   like the same photo sent as a data URL to gpt-4-vision) → 1488 patches by the documented
//!   shrink, 3662 on gpt-4.1-nano (3675 − 13) and 2233 on gpt-5-nano (2245 − 12): both fit
//!   exactly, the size is the guess.
//! * INFERENCE: gpt-5-mini ×1.2 (the docs say 1.62, gpt-5-nano 2.46): two recorded gpt-5-mini
//!   requests, identical but for a 597×566 JPEG or a 400×301 PNG, differ by 255 = 411 − 156
//!   (×1.2); ×1.62 would give 344. gpt-5-nano's 1.5 fits the 16×16 bill (2.46 would not).
//! * DOCS ONLY (no recorded bill): gpt-4o-mini 2833/5667, o1 and o3 75/150, gpt-4.1 and gpt-4.5
//!   85/170, gpt-4.1-mini ×1.62, o4-mini ×1.72, `detail: low`, the shrink above 2048 px on
//!   tiles and above 1536 patches (only the inferred boardwalk size exercises it). A forum
//!   measurement contradicts o1 (it billed far less than 75/150); rounding of the resized
//!   sizes on tiles (truncated to whole pixels here) is not settled by any bill.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

/// How a model prices an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageRule {
    /// `base` for the image, plus `per_tile` for each 512-px tile (not with `detail: low`).
    Tiles { base: u64, per_tile: u64 },
    /// 32-px patches (at most 1536) times the multiplier, given in thousandths (1.62 → 1620),
    /// rounded up, plus 1.
    Patches { multiplier_milli: u64 },
    /// No known rule (not a vision model, or one not priced here).
    Unknown,
}

/// A model name lower-cased, without a `provider/` prefix.
fn bare_name(model: &str) -> String {
    let lower = model.trim().to_ascii_lowercase();
    lower.rsplit('/').next().unwrap_or_default().to_owned()
}

/// `name` is `family` or a dated snapshot or variant of it (`family-…`).
fn is_family(name: &str, family: &str) -> bool {
    name == family
        || name
            .strip_prefix(family)
            .is_some_and(|rest| rest.starts_with('-'))
}

/// The image pricing of `model` (a dated snapshot prices as its family; a `provider/` prefix is
/// ignored).
pub fn rule_for(model: &str) -> ImageRule {
    let name = bare_name(model);
    let name = name.as_str();
    let is = |family: &str| is_family(name, family);
    const NO_IMAGES: [&str; 5] = ["audio", "realtime", "transcribe", "tts", "search"];
    if NO_IMAGES.iter().any(|w| name.contains(w)) {
        return ImageRule::Unknown;
    }
    let gpt4o = ImageRule::Tiles {
        base: 85,
        per_tile: 170,
    };
    let o_series = ImageRule::Tiles {
        base: 75,
        per_tile: 150,
    };
    if is("gpt-4o-mini") {
        ImageRule::Tiles {
            base: 2833,
            per_tile: 5667,
        }
    } else if is("gpt-4o") || is("chatgpt-4o-latest") {
        gpt4o
    } else if is("gpt-4.1-mini") {
        ImageRule::Patches {
            multiplier_milli: 1620,
        }
    } else if is("gpt-4.1-nano") {
        ImageRule::Patches {
            multiplier_milli: 2460,
        }
    } else if is("gpt-4.1")
        || is("gpt-4.5")
        || name.contains("vision")
        || (is("gpt-4-turbo") && !name.contains("preview"))
    {
        gpt4o
    } else if is("o4-mini") {
        ImageRule::Patches {
            multiplier_milli: 1720,
        }
    } else if is("o1-mini") || is("o1-preview") || is("o3-mini") {
        ImageRule::Unknown
    } else if is("o1") || is("o1-pro") || is("o3") || is("o3-pro") {
        o_series
    } else if is("gpt-5-mini") {
        ImageRule::Patches {
            multiplier_milli: 1200,
        }
    } else if is("gpt-5-nano") {
        ImageRule::Patches {
            multiplier_milli: 1500,
        }
    } else {
        ImageRule::Unknown
    }
}

/// Whether `model`'s image rule rests on recorded bills (gpt-4o and the gpt-4 vision models,
/// tiles; gpt-4.1-nano, gpt-5-nano and gpt-5-mini, patches): images sent as data URLs are then
/// counted exactly. Other families' images are counted by their documented rule and marked
/// estimates.
pub fn rule_rests_on_bills(model: &str) -> bool {
    let name = bare_name(model);
    let name = name.as_str();
    let is = |family: &str| is_family(name, family);
    rule_for(model) != ImageRule::Unknown
        && ((is("gpt-4o") && !is("gpt-4o-mini"))
            || name.contains("vision")
            || (is("gpt-4-turbo") && !name.contains("preview"))
            || is("gpt-4.1-nano")
            || is("gpt-5-nano")
            || is("gpt-5-mini"))
}

/// Prompt tokens of an `image_url` part on a model priced by `rule`: by the image's size when
/// `url` is a data URL whose header gives it, else None.
pub fn part_tokens(rule: ImageRule, url: Option<&str>, detail: Option<&str>) -> Option<u64> {
    let (width, height) = data_url_image_size(url?)?;
    image_tokens(rule, width, height, detail)
}

/// Prompt tokens of one `width`×`height` image under `rule`; `detail` is the part's `detail`
/// (`low`, `high`, `auto` or absent). None for [`ImageRule::Unknown`] or an empty size.
pub fn image_tokens(rule: ImageRule, width: u32, height: u32, detail: Option<&str>) -> Option<u64> {
    if width == 0 || height == 0 {
        return None;
    }
    let low = detail.is_some_and(|d| d.trim().eq_ignore_ascii_case("low"));
    match rule {
        ImageRule::Tiles { base, .. } if low => Some(base),
        ImageRule::Tiles { base, per_tile } => {
            let tiles = tile_count(u64::from(width), u64::from(height));
            Some(base.saturating_add(per_tile.saturating_mul(tiles)))
        }
        ImageRule::Patches { multiplier_milli } => {
            let patches = patch_count(u64::from(width), u64::from(height));
            Some(ceil_div(patches.saturating_mul(multiplier_milli), 1000).saturating_add(1))
        }
        ImageRule::Unknown => None,
    }
}

/// `ceil(a / b)`, `b > 0`.
fn ceil_div(a: u64, b: u64) -> u64 {
    a.div_ceil(b.max(1))
}

/// 512-px tiles after fitting into 2048×2048 and scaling the shortest side down to 768 (both
/// only shrink, keep the aspect ratio, and truncate to whole pixels).
fn tile_count(width: u64, height: u64) -> u64 {
    let (long, short) = (width.max(height), width.min(height));
    let (long, short) = if long > 2048 {
        (2048, (short * 2048 / long).max(1))
    } else {
        (long, short)
    };
    let (long, short) = if short > 768 {
        ((long * 768 / short).max(1), 768)
    } else {
        (long, short)
    };
    ceil_div(long, 512) * ceil_div(short, 512)
}

/// Most patches an image costs.
const MAX_PATCHES: u64 = 1536;

/// 32-px patches covering the image; over 1536, OpenAI's documented shrink:
/// `r = sqrt(32²·1536 / (w·h))`, then `r *= min(floor(w·r/32) / (w·r/32), floor(h·r/32) /
/// (h·r/32))`, patches `ceil(w·r/32) · ceil(h·r/32)`, capped at 1536. Done in integers:
/// `floor(w·r/32) = isqrt(1536·w/h)`, and the side with the smaller ratio lands on a whole
/// number of patches.
fn patch_count(width: u64, height: u64) -> u64 {
    let raw = ceil_div(width, 32) * ceil_div(height, 32);
    if raw <= MAX_PATCHES {
        return raw;
    }
    let across = (MAX_PATCHES * width / height).isqrt().max(1);
    let down = (MAX_PATCHES * height / width).isqrt().max(1);
    // across/width <= down/height: the width is the limiting side.
    let (across, down) = if across * height <= down * width {
        (across, ceil_div(height * across, width))
    } else {
        (ceil_div(width * down, height), down)
    };
    (across * down).min(MAX_PATCHES)
}

/// Width and height of a base64 `data:image/...` URL (PNG, JPEG, GIF or WebP, told by the bytes,
/// not the declared type), read from the header. None for anything else, a malformed header or
/// base64 text that is not plain (whitespace, URL-safe alphabet).
pub fn data_url_image_size(url: &str) -> Option<(u32, u32)> {
    let mut bytes = Base64Bytes::new(base64_payload(url)?)?;
    let magic = bytes.head(30);
    let magic = magic.as_slice();
    let size = if magic.starts_with(b"\x89PNG\r\n\x1a\n") {
        png_size(magic)
    } else if magic.starts_with(b"GIF87a") || magic.starts_with(b"GIF89a") {
        Some((u32::from(le16(magic, 6)?), u32::from(le16(magic, 8)?)))
    } else if magic.starts_with(b"RIFF") && magic.get(8..12) == Some(b"WEBP") {
        webp_size(magic)
    } else if magic.starts_with(&[0xFF, 0xD8]) {
        jpeg_size(&mut bytes)
    } else {
        None
    }?;
    (size.0 > 0 && size.1 > 0).then_some(size)
}

/// The base64 text of a `data:image/<type>[;params];base64,<text>` URL.
fn base64_payload(url: &str) -> Option<&[u8]> {
    let url = url.trim_start();
    let scheme = url.get(..5)?;
    if !scheme.eq_ignore_ascii_case("data:") {
        return None;
    }
    let (header, data) = url.get(5..)?.split_once(',')?;
    let mut params = header.split(';');
    let mime = params.next()?.trim();
    if !mime.get(..6)?.eq_ignore_ascii_case("image/") {
        return None;
    }
    params
        .any(|p| p.trim().eq_ignore_ascii_case("base64"))
        .then_some(data.trim_end().as_bytes())
}

/// PNG: the first chunk is IHDR, width and height big-endian at bytes 16 and 20.
fn png_size(b: &[u8]) -> Option<(u32, u32)> {
    (b.get(12..16)? == b"IHDR").then_some(())?;
    Some((be32(b, 16)?, be32(b, 20)?))
}

/// WebP: the first chunk of `RIFF....WEBP` is `VP8 ` (lossy), `VP8L` (lossless) or `VP8X`
/// (extended, canvas size).
fn webp_size(b: &[u8]) -> Option<(u32, u32)> {
    match b.get(12..16)? {
        b"VP8 " => {
            // Frame tag (3 bytes), start code 9d 01 2a, then 14-bit width and height.
            (b.get(23..26)? == [0x9D, 0x01, 0x2A]).then_some(())?;
            Some((
                u32::from(le16(b, 26)? & 0x3FFF),
                u32::from(le16(b, 28)? & 0x3FFF),
            ))
        }
        b"VP8L" => {
            // Signature 0x2f, then width − 1 and height − 1 in 14 bits each.
            (*b.get(20)? == 0x2F).then_some(())?;
            let bits = u32::from_le_bytes(b.get(21..25)?.try_into().ok()?);
            Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        }
        // Flags (1 byte), reserved (3), canvas width − 1 and height − 1 in 24 bits each.
        b"VP8X" => Some((le24(b, 24)? + 1, le24(b, 27)? + 1)),
        _ => None,
    }
}

/// Most markers walked in a JPEG before giving up (fill bytes count one each).
const MAX_JPEG_MARKERS: usize = 4096;

/// JPEG: walk the markers to the first start-of-frame (SOF0..SOF15 but DHT c4, JPG c8, DAC cc),
/// `ff cN len(2) precision(1) height(2) width(2)`. APP segments (EXIF, ICC profiles) before it
/// can be large: the walk reads only the window of base64 text around each marker.
fn jpeg_size(bytes: &mut Base64Bytes<'_>) -> Option<(u32, u32)> {
    let mut pos: usize = 2;
    for _ in 0..MAX_JPEG_MARKERS {
        let [lead, marker] = bytes.pair(pos)?;
        if lead != 0xFF {
            return None;
        }
        match marker {
            // Fill byte before a marker.
            0xFF => pos = pos.checked_add(1)?,
            // Stand-alone markers: TEM, RSTn, SOI.
            0x01 | 0xD0..=0xD8 => pos = pos.checked_add(2)?,
            // End of image or start of scan before any frame header.
            0xD9 | 0xDA => return None,
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                let frame = bytes.get(pos.checked_add(5)?, 4)?;
                let (height, width) = (be16(frame, 0)?, be16(frame, 2)?);
                return Some((u32::from(width), u32::from(height)));
            }
            _ => {
                let len = usize::from(u16::from_be_bytes(bytes.pair(pos.checked_add(2)?)?));
                if len < 2 {
                    return None;
                }
                pos = pos.checked_add(2)?.checked_add(len)?;
            }
        }
    }
    None
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn le24(b: &[u8], at: usize) -> Option<u32> {
    let [x, y, z]: [u8; 3] = b.get(at..at.checked_add(3)?)?.try_into().ok()?;
    Some(u32::from_le_bytes([x, y, z, 0]))
}

/// Standard alphabet; padding optional (a window inside the text has none) and lax trailing
/// bits.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Base64 characters decoded at a time: 64 KiB of text, 48 KiB of bytes (a multiple of 4, so
/// every window starts on a 4-character group).
const WINDOW_CHARS: usize = 64 * 1024;

/// The bytes of base64 text, decoded one window at a time: bytes `3k..3k+3n` are characters
/// `4k..4k+4n`, so any stretch can be decoded on its own without decoding what comes before.
struct Base64Bytes<'a> {
    text: &'a [u8],
    /// Byte offset of `window`'s first byte.
    start: usize,
    window: Vec<u8>,
}

impl<'a> Base64Bytes<'a> {
    fn new(text: &'a [u8]) -> Option<Self> {
        let mut bytes = Self {
            text,
            start: 0,
            window: Vec::new(),
        };
        bytes.load(0)?;
        Some(bytes)
    }

    /// Decode the window starting at the 4-character group that holds byte `offset`.
    fn load(&mut self, offset: usize) -> Option<()> {
        let group = offset / 3;
        let first = group.checked_mul(4)?;
        let last = first.saturating_add(WINDOW_CHARS).min(self.text.len());
        let window = BASE64.decode(self.text.get(first..last)?).ok()?;
        self.window = window;
        self.start = group.checked_mul(3)?;
        Some(())
    }

    /// Up to the first `n` bytes (the window holds the start right after [`Self::new`]).
    fn head(&self, n: usize) -> Vec<u8> {
        self.window.iter().take(n).copied().collect()
    }

    /// The two bytes at `offset`.
    fn pair(&mut self, offset: usize) -> Option<[u8; 2]> {
        self.get(offset, 2)?.try_into().ok()
    }

    /// Bytes `offset..offset + len` (None past the end or on text that is not base64).
    fn get(&mut self, offset: usize, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len)?;
        let held = offset >= self.start && end <= self.start.saturating_add(self.window.len());
        if !held {
            self.load(offset)?;
        }
        let from = offset.checked_sub(self.start)?;
        self.window.get(from..from.checked_add(len)?)
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use base64::engine::general_purpose::STANDARD;
    use serde_json::Value;

    use super::super::config::Encoding;
    use super::super::counter::tests::counter;
    use super::*;

    // ---- tiny real image headers ---------------------------------------------------------

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn data_url(mime: &str, bytes: &[u8]) -> String {
        format!("data:{mime};base64,{}", STANDARD.encode(bytes))
    }

    /// Signature, a valid IHDR chunk (8-bit RGB) and IEND.
    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut chunk = b"IHDR".to_vec();
        chunk.extend_from_slice(&width.to_be_bytes());
        chunk.extend_from_slice(&height.to_be_bytes());
        chunk.extend_from_slice(&[8, 2, 0, 0, 0]);
        out.extend_from_slice(&13u32.to_be_bytes());
        out.extend_from_slice(&chunk);
        out.extend_from_slice(&crc32(&chunk).to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(b"IEND");
        out.extend_from_slice(&crc32(b"IEND").to_be_bytes());
        out
    }

    fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0xFF, marker];
        out.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// SOI, APP0 (JFIF), an APP1 (EXIF) of `exif_len` bytes, DQT, DHT, SOF0, SOS, EOI.
    fn jpeg(width: u16, height: u16, exif_len: usize) -> Vec<u8> {
        let mut out = vec![0xFF, 0xD8];
        out.extend(segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
        let mut exif = b"Exif\0\0MM\0\x2a".to_vec();
        exif.resize(exif_len, 0xAB);
        out.extend(segment(0xE1, &exif));
        out.extend(segment(0xDB, &[0u8; 65]));
        // A DHT (c4) before the frame: in the SOF range but not a frame header.
        out.extend(segment(0xC4, &[0u8; 29]));
        out.push(0xFF); // a fill byte
        let mut sof = vec![8];
        sof.extend_from_slice(&height.to_be_bytes());
        sof.extend_from_slice(&width.to_be_bytes());
        sof.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        out.extend(segment(0xC0, &sof));
        out.extend(segment(0xDA, &[3, 1, 0, 2, 0x11, 3, 0x11, 0, 0x3F, 0]));
        out.extend_from_slice(&[0x12, 0x34, 0xFF, 0xD9]);
        out
    }

    fn gif(width: u16, height: u16) -> Vec<u8> {
        let mut out = b"GIF89a".to_vec();
        out.extend_from_slice(&width.to_le_bytes());
        out.extend_from_slice(&height.to_le_bytes());
        out.extend_from_slice(&[0, 0, 0, b';']);
        out
    }

    fn riff(chunk: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&u32::try_from(payload.len() + 12).unwrap().to_le_bytes());
        out.extend_from_slice(b"WEBP");
        out.extend_from_slice(chunk);
        out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_le_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn webp_vp8x(width: u32, height: u32) -> Vec<u8> {
        let mut payload = vec![0x10, 0, 0, 0];
        payload.extend_from_slice(&(width - 1).to_le_bytes()[..3]);
        payload.extend_from_slice(&(height - 1).to_le_bytes()[..3]);
        riff(b"VP8X", &payload)
    }

    fn webp_vp8(width: u16, height: u16) -> Vec<u8> {
        let mut payload = vec![0x50, 0x02, 0x00, 0x9D, 0x01, 0x2A];
        payload.extend_from_slice(&width.to_le_bytes());
        payload.extend_from_slice(&height.to_le_bytes());
        payload.extend_from_slice(&[0; 8]);
        riff(b"VP8 ", &payload)
    }

    fn webp_vp8l(width: u32, height: u32) -> Vec<u8> {
        let mut payload = vec![0x2F];
        let bits = (width - 1) | ((height - 1) << 14);
        payload.extend_from_slice(&bits.to_le_bytes());
        payload.extend_from_slice(&[0; 4]);
        riff(b"VP8L", &payload)
    }

    // ---- sizes ---------------------------------------------------------------------------

    #[test]
    fn reads_sizes_from_headers() {
        let png = data_url("image/png", &png(3008, 2000));
        assert_eq!(data_url_image_size(&png), Some((3008, 2000)));
        let gif = data_url("image/gif", &gif(800, 400));
        assert_eq!(data_url_image_size(&gif), Some((800, 400)));
        let vp8x = data_url("image/webp", &webp_vp8x(540, 360));
        assert_eq!(data_url_image_size(&vp8x), Some((540, 360)));
        let vp8 = data_url("image/webp", &webp_vp8(1024, 768));
        assert_eq!(data_url_image_size(&vp8), Some((1024, 768)));
        let vp8l = data_url("image/webp", &webp_vp8l(16383, 1));
        assert_eq!(data_url_image_size(&vp8l), Some((16383, 1)));
        let jpeg = data_url("image/jpeg", &jpeg(2560, 1669, 100));
        assert_eq!(data_url_image_size(&jpeg), Some((2560, 1669)));
    }

    #[test]
    fn jpeg_frame_after_a_large_exif_segment_is_found_past_the_first_window() {
        // 60 000 EXIF bytes: the SOF0 lies past the first 48 KiB decoded.
        let bytes = jpeg(597, 566, 60_000);
        let url = data_url("image/jpeg", &bytes);
        assert!(url.len() > WINDOW_CHARS + 20);
        assert_eq!(data_url_image_size(&url), Some((597, 566)));
        // Nothing after the header is needed: a truncated URL (cut on a 4-character group)
        // still gives the size, and a body of 4 MB is not decoded whole.
        let mut big = bytes.clone();
        big.truncate(big.len() - 2);
        big.resize(3_000_000, 0x55);
        let url = data_url("image/jpeg", &big);
        let cut = url.find(',').unwrap() + 1 + 81_000 * 4 / 3 / 4 * 4;
        assert_eq!(data_url_image_size(&url[..cut]), Some((597, 566)));
        assert_eq!(data_url_image_size(&url), Some((597, 566)));
    }

    #[test]
    fn the_bytes_decide_the_format_and_junk_is_none() {
        // Mislabelled type: the PNG signature wins.
        let url = data_url("image/jpeg", &png(10, 20));
        assert_eq!(data_url_image_size(&url), Some((10, 20)));
        for bad in [
            "https://example.com/a.png".to_owned(),
            "data:image/png,iVBORw0KGgo".to_owned(),
            "data:text/plain;base64,aGVsbG8=".to_owned(),
            "data:image/png;base64,!!!!".to_owned(),
            "data:image/png;base64,".to_owned(),
            data_url("image/png", &png(10, 20)[..20]),
            data_url("image/png", &png(0, 20)),
            data_url(
                "image/bmp",
                b"BM\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
            ),
            // A JPEG whose scan starts before any frame header, and one cut inside its APP1.
            data_url("image/jpeg", &[0xFF, 0xD8, 0xFF, 0xDA, 0, 2, 0xFF, 0xD9]),
            data_url("image/jpeg", &jpeg(10, 10, 5000)[..3000]),
            // A segment length below 2.
            data_url("image/jpeg", &[0xFF, 0xD8, 0xFF, 0xE0, 0, 1, 0, 0, 0, 0]),
        ] {
            assert_eq!(data_url_image_size(&bad), None, "{bad:.60}");
        }
        // Parameters and case in the header are accepted.
        let url = format!(
            "DATA:Image/PNG;name=x.png;base64,{}",
            STANDARD.encode(png(7, 9))
        );
        assert_eq!(data_url_image_size(&url), Some((7, 9)));
    }

    /// The real images of the recorded requests, cut to the start of their base64 text.
    #[test]
    fn reads_the_recorded_images() {
        let doc: Value =
            serde_json::from_str(include_str!("../../testdata/images/recorded_prefixes.json"))
                .unwrap();
        let images = doc["images"].as_array().unwrap();
        assert_eq!(images.len(), 6);
        for img in images {
            let url = img["url_prefix"].as_str().unwrap();
            let want = (
                u32::try_from(img["width"].as_u64().unwrap()).unwrap(),
                u32::try_from(img["height"].as_u64().unwrap()).unwrap(),
            );
            assert_eq!(data_url_image_size(url), Some(want), "{url:.60}");
        }
    }

    // ---- costs ---------------------------------------------------------------------------

    #[test]
    fn rules_by_model() {
        let tiles = |base, per_tile| ImageRule::Tiles { base, per_tile };
        let patches = |multiplier_milli| ImageRule::Patches { multiplier_milli };
        for (model, rule) in [
            ("gpt-4o", tiles(85, 170)),
            ("gpt-4o-2024-08-06", tiles(85, 170)),
            ("openai/gpt-4o", tiles(85, 170)),
            ("chatgpt-4o-latest", tiles(85, 170)),
            ("gpt-4o-mini", tiles(2833, 5667)),
            ("gpt-4o-mini-2024-07-18", tiles(2833, 5667)),
            ("gpt-4.1", tiles(85, 170)),
            ("gpt-4.1-2025-04-14", tiles(85, 170)),
            ("gpt-4.5-preview", tiles(85, 170)),
            ("gpt-4-turbo", tiles(85, 170)),
            ("gpt-4-turbo-2024-04-09", tiles(85, 170)),
            ("gpt-4-vision-preview", tiles(85, 170)),
            ("gpt-4-1106-vision-preview", tiles(85, 170)),
            ("o1", tiles(75, 150)),
            ("o1-2024-12-17", tiles(75, 150)),
            ("o3", tiles(75, 150)),
            ("o3-2025-04-16", tiles(75, 150)),
            ("gpt-4.1-mini", patches(1620)),
            ("gpt-4.1-nano-2025-04-14", patches(2460)),
            ("o4-mini", patches(1720)),
            ("gpt-5-mini", patches(1200)),
            ("gpt-5-nano-2025-08-07", patches(1500)),
            ("gpt-4o-audio-preview", ImageRule::Unknown),
            ("gpt-4o-mini-search-preview", ImageRule::Unknown),
            ("gpt-4-turbo-preview", ImageRule::Unknown),
            ("gpt-4", ImageRule::Unknown),
            ("o1-mini", ImageRule::Unknown),
            ("o3-mini", ImageRule::Unknown),
            ("gpt-5", ImageRule::Unknown),
            ("gpt-3.5-turbo", ImageRule::Unknown),
            ("gpt-4o1", ImageRule::Unknown),
        ] {
            assert_eq!(rule_for(model), rule, "{model}");
        }
        assert_eq!(image_tokens(ImageRule::Unknown, 10, 10, None), None);
        assert_eq!(image_tokens(tiles(85, 170), 0, 10, None), None);
    }

    #[test]
    fn tiles_follow_the_documented_examples() {
        let rule = rule_for("gpt-4o");
        // The docs' examples: 1024×1024 high → 765, 2048×4096 → 1105, low → 85.
        assert_eq!(image_tokens(rule, 1024, 1024, Some("high")), Some(765));
        assert_eq!(image_tokens(rule, 2048, 4096, None), Some(1105));
        assert_eq!(image_tokens(rule, 4096, 8192, Some("LOW")), Some(85));
        // Small images are not scaled up.
        assert_eq!(image_tokens(rule, 16, 16, Some("auto")), Some(255));
        assert_eq!(image_tokens(rule, 513, 500, None), Some(425));
        // Extreme aspect ratios stay defined.
        assert_eq!(image_tokens(rule, u32::MAX, 1, None), Some(85 + 4 * 170));
        assert_eq!(
            image_tokens(rule_for("gpt-4o-mini"), 128, 64, None),
            Some(8500)
        );
        assert_eq!(image_tokens(rule_for("o3"), 128, 64, Some("low")), Some(75));
    }

    #[test]
    fn patches_follow_the_documented_examples() {
        // The docs' examples on a ×1 model: 1024×1024 → 1024 patches, 1800×2400 → 1452.
        assert_eq!(patch_count(1024, 1024), 1024);
        assert_eq!(patch_count(1800, 2400), 1452);
        assert_eq!(patch_count(2400, 1800), 1452);
        assert_eq!(patch_count(2048, 768), 1536);
        assert!(patch_count(u64::from(u32::MAX), 1) <= MAX_PATCHES);
        assert!(patch_count(1, u64::from(u32::MAX)) <= MAX_PATCHES);
        // detail has no effect; ceil(patches × multiplier) + 1.
        let mini = rule_for("gpt-4.1-mini");
        assert_eq!(image_tokens(mini, 128, 64, Some("low")), Some(14)); // 8 × 1.62 = 12.96
        assert_eq!(image_tokens(mini, 128, 64, Some("high")), Some(14));
        // Integer multiplier: 920 × 1.2 is 1104 exactly, not 1105.
        assert_eq!(
            image_tokens(rule_for("gpt-5-mini"), 1280, 720, None),
            Some(1105)
        );
    }

    // ---- recorded bills ------------------------------------------------------------------

    /// The text recipe of a one-message chat: 3 + role + text + priming (3; 2 on gpt-5).
    fn text_recipe(text: &str, priming: u64) -> u64 {
        let c = counter();
        3 + c.count(Encoding::O200kBase, "user") + c.count(Encoding::O200kBase, text) + priming
    }

    /// Billed prompt tokens of real requests (testdata/billing/openai_recorded.json and the
    /// research facts), one user message of one text part and one image: text recipe + image
    /// cost must equal the bill.
    #[test]
    fn recorded_bills_are_text_plus_image() {
        let doc: Value =
            serde_json::from_str(include_str!("../../testdata/images/recorded_prefixes.json"))
                .unwrap();
        let size_of = |w: u64, h: u64| {
            let img = doc["images"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["width"] == w && i["height"] == h)
                .unwrap();
            data_url_image_size(img["url_prefix"].as_str().unwrap()).unwrap()
        };
        let fruit = "What fruit is in the image?";
        let what = "What is in this image?";
        let veg = "What is this vegetable?";
        let five = "Answer in up to 5 words: What's in this image?";
        // (model, text, priming, image size, billed, image cost)
        let cases = [
            // gpt-4o, 3008×2000 PNG data URL, detail absent: 85 + 6 × 170.
            ("gpt-4o", fruit, 3, size_of(3008, 2000), 1119, 1105),
            // gpt-4-vision-preview, 2560×1669 JPEG data URL: 85 + 6 × 170.
            (
                "gpt-4-vision-preview",
                what,
                3,
                size_of(2560, 1669),
                1118,
                1105,
            ),
            // gpt-4-vision-preview, http URL .../800x400 (size from the URL): 85 + 2 × 170.
            ("gpt-4-vision-preview", what, 3, (800, 400), 438, 425),
            // gpt-4.1-nano, 540×360 JPEG: 17 × 12 = 204 patches × 2.46 = 501.84 → 502, + 1.
            ("gpt-4.1-nano", veg, 3, size_of(540, 360), 515, 503),
            // gpt-4.1-nano, 16×16 PNG: 1 patch × 2.46 → 3, + 1.
            ("gpt-4.1-nano", five, 3, size_of(16, 16), 24, 4),
            // gpt-5-nano, 16×16 PNG: 1 patch × 1.5 → 2, + 1; priming 2.
            ("gpt-5-nano", five, 2, size_of(16, 16), 22, 3),
            // INFERENCE on the size: the Wikimedia boardwalk photo by http URL, taken as
            // 2560×1669 → 48 × 31 = 1488 patches; × 2.46 → 3661 + 1, × 1.5 → 2232 + 1.
            ("gpt-4.1-nano", what, 3, (2560, 1669), 3675, 3662),
            ("gpt-5-nano", what, 2, (2560, 1669), 2245, 2233),
        ];
        for (model, text, priming, (w, h), billed, image) in cases {
            let cost = image_tokens(rule_for(model), w, h, None).unwrap();
            assert_eq!(cost, image, "{model} {w}×{h}");
            assert_eq!(text_recipe(text, priming) + cost, billed, "{model} {w}×{h}");
        }
        assert_eq!(patch_count(2560, 1669), 1488);
        // gpt-5-mini: two recorded requests identical but for the image (597×566 JPEG billed
        // 572, 400×301 PNG billed 317) differ by 255 = (ceil(342 × 1.2) + 1) − (130 × 1.2 + 1).
        let mini = rule_for("gpt-5-mini");
        let (jw, jh) = size_of(597, 566);
        let (pw, ph) = size_of(400, 301);
        let jpeg = image_tokens(mini, jw, jh, None).unwrap();
        let png = image_tokens(mini, pw, ph, None).unwrap();
        assert_eq!(jpeg - png, 572 - 317);
    }
}
