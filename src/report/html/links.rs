//! Links and images: link destinations, alt texts and backslash escapes, the link policy (only
//! `#anchors`, relative paths and `http(s)` addresses), and images inlined as base64 `data:` URIs
//! (only PNG, JPEG or GIF files inside the results folder).

use super::render::Ctx;
use super::HtmlError;
use std::path::{Component, Path};

/// Largest image inlined (bytes).
const MAX_IMAGE_BYTES: u64 = 32 << 20;

/// Standard base64 (RFC 4648 §4, with `=` padding) of `bytes`.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |k: u32| char::from(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize]);
        out.push(sextet(0));
        out.push(sextet(1));
        out.push(if chunk.len() > 1 { sextet(2) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(3) } else { '=' });
    }
    out
}

/// A paragraph that is only an image: its alt text and source.
pub(super) fn lone_image(text: &str) -> Option<(String, String)> {
    let t = text.trim();
    let rest = t.strip_prefix("![")?;
    let close = matching_bracket(t, 1)?;
    let (dest, end) = destination(t, close + 1)?;
    (end == t.len()).then(|| (alt_text(&rest[..close - 2]), dest))
}

/// The `]` closing the `[` at byte `open` of `s` (nested brackets counted, escapes skipped).
fn matching_bracket(s: &str, open: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'[' => depth += 1,
            b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// A link destination `(dest)` starting at byte `at` of `s`: the destination and the byte after
/// the `)`. No spaces, no titles, no nested parentheses.
pub(super) fn destination(s: &str, at: usize) -> Option<(String, usize)> {
    let rest = s.get(at..)?.strip_prefix('(')?;
    let end = rest.find(|c: char| c == ')' || c == '(' || c == '<' || c.is_whitespace())?;
    if rest.as_bytes()[end] != b')' {
        return None;
    }
    Some((unescape(&rest[..end]), at + 1 + end + 1))
}

/// Backslash escapes of ASCII punctuation resolved.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&n) = chars.peek() {
                if n.is_ascii_punctuation() {
                    out.push(n);
                    chars.next();
                    continue;
                }
            }
        }
        out.push(c);
    }
    out
}

/// An image's alt text: its markup's plain text (escapes resolved, `*` and backticks dropped).
pub(super) fn alt_text(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(|n| n.is_ascii_punctuation()) => {
                out.extend(chars.next());
            }
            '*' | '`' => {}
            '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Whether a link goes somewhere allowed: `#anchor`, an `http(s)` URL, or a relative path (no
/// scheme, not protocol- or root-relative, no backslashes, no whitespace or control characters).
pub(super) fn safe_href(url: &str) -> bool {
    if url.is_empty()
        || url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return false;
    }
    if url.starts_with('#') {
        return true;
    }
    let lower = url.to_ascii_lowercase();
    if let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    {
        return !rest.is_empty() && !rest.starts_with('/');
    }
    if url.starts_with('/') {
        return false;
    }
    // a colon before the first `/`, `?` or `#` would be a scheme (`javascript:`, `data:`)
    let head_end = url.find(['/', '?', '#']).unwrap_or(url.len());
    !url[..head_end].contains(':')
}

/// The `data:` URI of the image at `src` (relative to the results folder), read once per page.
pub(super) fn image_uri(src: &str, ctx: &mut Ctx) -> Result<String, HtmlError> {
    if let Some(uri) = ctx.images.get(src) {
        return Ok(uri.clone());
    }
    let reject = |reason: &str| HtmlError::ImageRejected {
        src: src.to_string(),
        reason: reason.to_string(),
    };
    if src.is_empty() || src.contains(['\\', ':', '?', '#']) || src.chars().any(|c| c.is_control())
    {
        return Err(reject(
            "only a file in the results folder is inlined (a relative path, no URL)",
        ));
    }
    let rel = Path::new(src);
    if !rel
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(reject(
            "only a file in the results folder is inlined (no absolute path, no `..`)",
        ));
    }
    let path = ctx.dir.join(rel);
    let io = |source| HtmlError::Image {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(&path).map_err(io)?;
    if !meta.is_file() {
        return Err(reject("not a file"));
    }
    if meta.len() > MAX_IMAGE_BYTES {
        return Err(reject(&format!(
            "{} bytes, more than the {MAX_IMAGE_BYTES} inlined",
            meta.len()
        )));
    }
    let bytes = std::fs::read(&path).map_err(io)?;
    let mime = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        "image/jpeg"
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        "image/gif"
    } else {
        return Err(reject("not a PNG, JPEG or GIF image"));
    };
    let uri = format!("data:{mime};base64,{}", base64(&bytes));
    ctx.images.insert(src.to_string(), uri.clone());
    Ok(uri)
}
