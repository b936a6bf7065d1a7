//! Checks of the HTML the converter writes, shared by its unit tests (`tests.rs` beside this
//! file) and the browser test (`tests/it/html_report.rs`, which includes this file by path): the
//! tags it may write, and the tables of a `table.md`.
#![allow(dead_code)]

/// A tag's name and its attributes (name, value).
pub(crate) type Tag = (String, Vec<(String, String)>);

/// The tags of our HTML: (name, [(attribute, value)]) in order; `None` when a `<` does not start a
/// well-formed tag (every `<` of our output must: text is escaped).
pub(crate) fn tags(html: &str) -> Option<Vec<Tag>> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        if let Some(r) = rest.strip_prefix("!DOCTYPE html>") {
            rest = r;
            continue;
        }
        let end = rest.find('>')?;
        let inner = &rest[..end];
        rest = &rest[end + 1..];
        let inner = inner.strip_prefix('/').unwrap_or(inner);
        let name_end = inner.find(' ').unwrap_or(inner.len());
        let name = inner[..name_end].to_string();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        let mut attrs = Vec::new();
        let mut a = inner[name_end..].trim_start();
        while !a.is_empty() {
            let eq = a.find("=\"")?;
            let key = a[..eq].to_string();
            let val_end = a[eq + 2..].find('"')?;
            attrs.push((key, a[eq + 2..eq + 2 + val_end].to_string()));
            a = a[eq + 2 + val_end + 1..].trim_start();
        }
        out.push((name, attrs));
    }
    Some(out)
}

/// Whether every tag and attribute of `html` is one the converter writes, and every link goes to
/// an anchor, a relative path or an http(s) URL.
pub(crate) fn only_our_markup(html: &str) -> Result<(), String> {
    const TAGS: &[&str] = &[
        "html",
        "head",
        "meta",
        "link",
        "title",
        "style",
        "body",
        "header",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "p",
        "nav",
        "details",
        "summary",
        "ul",
        "li",
        "main",
        "footer",
        "code",
        "strong",
        "em",
        "a",
        "img",
        "figure",
        "figcaption",
        "blockquote",
        "div",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "span",
    ];
    const ATTRS: &[&str] = &[
        "lang",
        "charset",
        "http-equiv",
        "content",
        "name",
        "rel",
        "href",
        "id",
        "class",
        "title",
        "aria-label",
        "src",
        "alt",
    ];
    let tags = tags(html).ok_or("a `<` that starts no tag of ours")?;
    for (name, attrs) in tags {
        if !TAGS.contains(&name.as_str()) {
            return Err(format!("tag <{name}>"));
        }
        for (k, v) in attrs {
            if !ATTRS.contains(&k.as_str()) {
                return Err(format!("attribute {k} of <{name}>"));
            }
            let lower = v.to_ascii_lowercase();
            if k == "href" && name == "a" {
                let scheme_end = lower.find(['/', '?', '#']).unwrap_or(lower.len());
                let ok = lower.starts_with('#')
                    || lower.starts_with("http://")
                    || lower.starts_with("https://")
                    || !(lower[..scheme_end].contains(':')
                        || lower.starts_with('/')
                        || lower.contains('\\'));
                if !ok {
                    return Err(format!("link to {v:?}"));
                }
            }
            if k == "href" && name == "link" && v != "data:," {
                return Err(format!("<link href={v:?}>"));
            }
            if k == "src" && !lower.starts_with("data:image/") {
                return Err(format!("image source {v:?}"));
            }
        }
    }
    Ok(())
}

/// The tables of a `table.md`: (header cells, number of body rows), in order.
pub(crate) fn markdown_tables(md: &str) -> Vec<(Vec<String>, usize)> {
    let lines: Vec<&str> = md.lines().collect();
    let is_sep = |l: &str| {
        l.starts_with('|')
            && l.contains('-')
            && l.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < lines.len() {
        if lines[i].starts_with('|') && is_sep(lines[i + 1]) {
            let header = lines[i]
                .trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect();
            i += 2;
            let mut rows = 0;
            while i < lines.len() && lines[i].starts_with('|') {
                rows += 1;
                i += 1;
            }
            out.push((header, rows));
        } else {
            i += 1;
        }
    }
    out
}
