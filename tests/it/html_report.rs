//! `report.html` (`neural_synergy::report::html`): the converter's escaping, tables, links and
//! images, its base64 encoder, and the page written by `reproduce-paper report --from`, opened
//! in a headless Chromium (skipped, saying why, where no Chromium is installed).

use neural_synergy::report::html::{base64, from_markdown, runs_id, slug, HtmlError};
use proptest::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A 1 × 1 PNG (one opaque pixel), base64.
const TINY_PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

/// RFC 4648 base64 decoding (with padding), the inverse the property checks against.
fn unbase64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::new();
    for chunk in s.as_bytes().chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | u32::from(val(c)?);
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

fn page(md: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    from_markdown(md, dir.path(), "t").unwrap()
}

/// A tag's name and its attributes (name, value).
type Tag = (String, Vec<(String, String)>);

/// The tags of our HTML: (name, [(attribute, value)]) in order; `None` when a `<` does not start a
/// well-formed tag (every `<` of our output must: text is escaped).
fn tags(html: &str) -> Option<Vec<Tag>> {
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
fn only_our_markup(html: &str) -> Result<(), String> {
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

/// Markdown-ish text: the characters of our markup subset and of HTML, JavaScript and URLs.
fn markup() -> impl Strategy<Value = String> {
    let tokens = prop::sample::select(vec![
        "<",
        ">",
        "&",
        "\"",
        "'",
        "`",
        "``",
        "*",
        "**",
        "***",
        "[",
        "]",
        "(",
        ")",
        "![",
        "](",
        "#",
        "## ",
        "> ",
        "- ",
        "|",
        "\\|",
        "\\",
        "\n",
        "\n\n",
        "|---|",
        " ",
        "a",
        "b",
        "script",
        "<script>",
        "</script>",
        "javascript:",
        "JaVaScRiPt:",
        "data:",
        "http://x.y/",
        "https://x.y/z",
        "//evil",
        "#anchor",
        "onerror=",
        "alert(1)",
        "<img src=x>",
        "\u{0}",
        "\t",
        "—",
        "supported",
        "contradicted",
        "survives Holm",
        "Model",
        "Variant",
        "verdict",
        "runs",
        "x.png",
        "../x.png",
        "&lt;",
    ]);
    prop::collection::vec(tokens, 0..80).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn html_base64_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let enc = base64(&bytes);
        prop_assert_eq!(enc.len(), bytes.len().div_ceil(3) * 4);
        prop_assert_eq!(unbase64(&enc), Some(bytes));
    }

    #[test]
    fn html_never_writes_markup_of_its_input(md in prop_oneof![any::<String>(), markup()]) {
        let dir = tempfile::tempdir().unwrap();
        match from_markdown(&md, dir.path(), &md) {
            Ok(page) => {
                prop_assert!(!page.to_ascii_lowercase().contains("<script"), "{page}");
                let checked = only_our_markup(&page);
                prop_assert!(checked.is_ok(), "{:?} in {}", checked, page);
                prop_assert!(!page.contains(char::from(0)));
            }
            // an image reference in an empty folder: refused or missing, never inlined
            Err(HtmlError::Image { .. } | HtmlError::ImageRejected { .. }) => {}
        }
    }

    #[test]
    fn html_tables_keep_their_rows(
        tables in prop::collection::vec(
            (1usize..6).prop_flat_map(|w| (
                prop::collection::vec("[^\n\r]{0,10}", w),
                prop::collection::vec(prop::collection::vec("[^\n\r!]{0,10}", w), 0..8),
            )),
            1..4,
        )
    ) {
        let cell = |c: &String| c.replace('\\', "\\\\").replace('|', "\\|");
        let row = |r: &Vec<String>| format!("| {} |\n", r.iter().map(cell).collect::<Vec<_>>().join(" | "));
        let mut md = String::from("# a report\n\n");
        for (header, rows) in &tables {
            md += &row(&header.iter().map(|h| h.replace('!', "")).collect());
            md += &format!("|{}\n", "---|".repeat(header.len()));
            for r in rows {
                md += &row(r);
            }
            md += "\nA paragraph between tables.\n\n";
        }
        let html = page(&md);
        let parts: Vec<&str> = html.split("<table>").skip(1).collect();
        prop_assert_eq!(parts.len(), tables.len(), "{}", html);
        for ((header, rows), part) in tables.iter().zip(parts) {
            let table = &part[..part.find("</table>").unwrap()];
            prop_assert_eq!(table.matches("<tr").count(), rows.len() + 1, "{}", table);
            prop_assert_eq!(table.matches("<th>").count(), header.len());
            prop_assert_eq!(table.matches("<td").count(), rows.len() * header.len());
        }
    }

    #[test]
    fn html_is_deterministic(md in markup()) {
        let dir = tempfile::tempdir().unwrap();
        let a = from_markdown(&md, dir.path(), "t").ok();
        let b = from_markdown(&md, dir.path(), "t").ok();
        prop_assert_eq!(a, b);
    }
}

#[test]
fn html_base64_matches_the_rfc_4648_vectors() {
    for (plain, enc) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(plain.as_bytes()), enc, "{plain:?}");
        assert_eq!(unbase64(enc).unwrap(), plain.as_bytes());
    }
    assert_eq!(base64(&[0xfb, 0xff, 0xbf]), "+/+/");
}

#[test]
fn html_missing_or_refused_image_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = from_markdown("text\n\n![plot](forest.png)\n", dir.path(), "t").unwrap_err();
    match &err {
        HtmlError::Image { path, source } => {
            assert!(path.ends_with("forest.png"), "{path}");
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("forest.png"), "{err}");
    std::fs::write(dir.path().join("notes.png"), "not a png").unwrap();
    std::fs::write(dir.path().join("..").join("outside.png"), "x").ok();
    for src in [
        "notes.png",
        "../outside.png",
        "/etc/passwd",
        "http://example.org/x.png",
        "data:image/png;base64,AAAA",
        "sub/../../x.png",
    ] {
        let md = format!("![plot]({src})\n");
        match from_markdown(&md, dir.path(), "t") {
            Err(HtmlError::ImageRejected { src: s, reason }) => {
                assert_eq!(s, src);
                assert!(!reason.is_empty());
            }
            other => panic!("{src}: {other:?}"),
        }
    }
    let _ = std::fs::remove_file(dir.path().join("..").join("outside.png"));
}

#[test]
fn html_inlines_images_as_data_uris() {
    let dir = tempfile::tempdir().unwrap();
    let png = unbase64(TINY_PNG).unwrap();
    std::fs::write(dir.path().join("forest.png"), &png).unwrap();
    let html = from_markdown(
        "Intro.\n\n![forest plot of the claims](forest.png)\n\nInline ![dot](./forest.png) too.\n",
        dir.path(),
        "t",
    )
    .unwrap();
    let uri = format!("data:image/png;base64,{}", base64(&png));
    assert_eq!(html.matches(&uri).count(), 2, "{html}");
    assert!(html.contains("<figure><img src=\"data:image/png;base64,"));
    assert!(html.contains("<figcaption>forest plot of the claims</figcaption>"));
    assert!(
        !html.contains("forest.png"),
        "no reference left to the file"
    );
}

#[test]
fn html_escapes_and_refuses_unsafe_links() {
    let html = page(
        "<script>alert(1)</script> & <b>bold</b>\n\n\
         [a](javascript:alert(1)) [b](JavaScript:x) [c](data:text/html,x) [d](//evil.org/x) \
         [e](/etc/passwd) [f](https://example.org/a?b=1&c=2) [g](#claims) [h](sub/page.html) \
         [i](vbscript:x) [j](\\\\evil)\n",
    );
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"));
    let hrefs: Vec<&str> = html
        .split("<a href=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .filter(|h| !h.starts_with('#') || *h == "#claims")
        .collect();
    assert_eq!(
        hrefs,
        [
            "https://example.org/a?b=1&amp;c=2",
            "#claims",
            "sub/page.html"
        ],
        "{html}"
    );
    assert!(
        !html.to_ascii_lowercase().contains("href=\"javascript"),
        "{html}"
    );
    // a refused link keeps its text
    assert!(html.contains(" b "), "{html}");
    only_our_markup(&html).unwrap();
}

#[test]
fn html_headings_get_github_anchors() {
    assert_eq!(
        slug("Table 2 (CMU-MOSI): FLSTM — dataset mosi, seeds [0, 1]"),
        "table-2-cmu-mosi-flstm--dataset-mosi-seeds-0-1"
    );
    assert_eq!(
        slug("Where synergy is needed: metrics per test subset"),
        "where-synergy-is-needed-metrics-per-test-subset"
    );
    assert_eq!(slug("Ünïcode_and-dash"), "ünïcode_and-dash");
    let html =
        page("## Table 4: `mosi` **x**\n\ntext\n\n## Table 4: mosi x\n\n### Table 4: mosi x\n");
    assert!(
        html.contains("<h2 id=\"table-4-mosi-x\">Table 4: <code>mosi</code> <strong>x</strong>"),
        "{html}"
    );
    assert!(html.contains("<h2 id=\"table-4-mosi-x-1\">"), "{html}");
    assert!(html.contains("<h3 id=\"table-4-mosi-x-2\">"), "{html}");
    assert!(
        html.contains("href=\"#table-4-mosi-x-2\""),
        "the contents list every heading"
    );
}

#[test]
fn html_claim_rows_link_to_their_runs() {
    assert_eq!(runs_id("FLSTM", "NLL+SKL"), "runs-flstm-nll-skl");
    assert_eq!(runs_id("MAGBERT", "NLL+IWas"), "runs-magbert-nll-iwas");
    let md = "\
| Model | Variant | runs | grid points | seeds finished | diverged | run-hours |
|---|---|---|---|---|---|---|
| FLSTM | NLL | 5 | 1 | 5 [0, 1, 2, 3, 4] | 0 | 0.04 |
| FLSTM | NLL+SKL | 5 | 1 | 5 [0, 1, 2, 3, 4] | 0 | 0.06 |

| Model | Variant | Metric | paper Δ | measured Δ [95 % CI] | verdict | seeds needed |
|---|---|---|---|---|---|---|
| FLSTM | NLL+SKL | Acc2 | +0.4 | -1.2 [-2.5, -0.0] | **contradicted** (synthetic, survives Holm) | 50 |
| FLSTM | NLL+SKL | MAE | +0.00 | +0.018 | **inconclusive** (synthetic) | — |
| TFN | NLL+SKL | MAE | +0.00 | — | — (no seed has both NLL and this variant) | — |

| Model | Variant | Acc7 | Acc2 | MAE | Corr | verdicts |
|---|---|---|---|---|---|---|
| FLSTM | NLL+SKL | 68.4 (31.6) | 92.7 (76.3) | 0.348 (1.01) | 0.947 (0.66) | Acc2 contradicted, MAE supported |

| Model | Variant | subset | metric | value | Δ vs NLL [95 % CI] | reading |
|---|---|---|---|---|---|---|
| FLSTM | NLL+SKL | sarcastic | Acc2 | 88.5 | -0.8 | hurts |
";
    let html = page(md);
    assert!(html.contains("<tr id=\"runs-flstm-nll\">"), "{html}");
    assert!(html.contains("<tr id=\"runs-flstm-nll-skl\">"), "{html}");
    let link = "<a class=\"runs\" href=\"#runs-flstm-nll-skl\"";
    // 2 claim rows and the paper-layout row: model and variant cells each
    assert_eq!(html.matches(link).count(), 6, "{html}");
    assert!(!html.contains("#runs-tfn"), "no runs row, no link");
    assert!(html.contains("<td class=\"verdict v-contradicted long\"><strong><span class=\"v-contradicted\">contradicted</span></strong> (synthetic, <span class=\"holm-yes\">survives Holm</span>)</td>"), "{html}");
    assert!(
        html.contains("<td class=\"verdict v-inconclusive\">"),
        "{html}"
    );
    assert!(
        html.contains("<td class=\"verdict v-none long\">"),
        "{html}"
    );
    assert!(html.contains("<td class=\"verdict v-mixed\">"), "{html}");
    assert!(
        html.contains(
            "<td class=\"v-contradicted\"><span class=\"v-contradicted\">hurts</span></td>"
        ),
        "{html}"
    );
}

#[test]
fn html_renders_every_committed_report() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    let mut seen = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(md) = std::fs::read_to_string(dir.join("table.md")) else {
            continue;
        };
        // a folder whose plots are being rewritten by a run in progress is skipped, not failed
        let Ok(html) = from_markdown(&md, &dir, "t") else {
            eprintln!("skipped {}: its images are not all there", dir.display());
            continue;
        };
        seen += 1;
        only_our_markup(&html).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let md_tables = markdown_tables(&md);
        let parts: Vec<&str> = html.split("<table>").skip(1).collect();
        assert_eq!(parts.len(), md_tables.len(), "{}", dir.display());
        for ((_, rows), part) in md_tables.iter().zip(parts) {
            let table = &part[..part.find("</table>").unwrap()];
            assert_eq!(table.matches("<tr").count(), rows + 1, "{}", dir.display());
        }
        assert_eq!(
            html.matches("<img src=\"data:image/png;base64,").count(),
            md.matches("![").count(),
            "{}",
            dir.display()
        );
        assert_eq!(
            html,
            from_markdown(&md, &dir, "t").unwrap(),
            "deterministic"
        );
    }
    assert!(seen >= 5, "only {seen} committed reports rendered");
}

/// The tables of a `table.md`: (header cells, number of body rows), in order.
fn markdown_tables(md: &str) -> Vec<(Vec<String>, usize)> {
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

// ---------------------------------------------------------------------------------------------
// the page in a browser

/// A Chromium on the PATH, if any.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
    .find(|p| p.is_file())
}

/// Runs a headless Chromium on `url` with `args`; its (stdout, stderr). Fails after 120 s.
fn headless(browser: &Path, profile: &Path, args: &[&str], url: &str) -> (String, String) {
    let out_path = profile.with_extension("stdout");
    let err_path = profile.with_extension("stderr");
    let mut child = Command::new(browser)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", browser.display()));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not finish in 120 s", browser.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        status.success(),
        "{} failed ({status}):\n{stderr}",
        browser.display()
    );
    (stdout, stderr)
}

/// The browser's console lines (`…:CONSOLE…] "message", source: …`): the page has no script, so
/// any is an error of the browser's (a refused load, a bad image).
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

/// Recorded in the checked copy: errors from the first moment (failed loads, CSP refusals,
/// `console.error`), then at `load` each table's section, header and rows, each image's natural
/// size, and the `#…` links without a target, as JSON in `<pre id="__check">`.
const CHECK_HEAD: &str = r##"<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  window.__errors.push(t && t !== window && t.tagName ? 'failed to load <' + t.tagName + '>' : String(e.message));
}, true);
document.addEventListener('securitypolicyviolation', function (e) {
  window.__errors.push('CSP refused ' + e.violatedDirective + ' ' + e.blockedURI);
});
(function () {
  var orig = console.error;
  console.error = function () {
    window.__errors.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
    orig.apply(console, arguments);
  };
})();
window.addEventListener('load', function () {
  var tables = [], section = '';
  document.querySelectorAll('h2, table').forEach(function (el) {
    if (el.tagName === 'H2') { section = el.id; return; }
    var head = el.tHead && el.tHead.rows.length ? el.tHead.rows[0].cells : [];
    tables.push({
      section: section,
      header: Array.prototype.map.call(head, function (c) { return c.textContent.trim(); }),
      rows: el.tBodies.length ? el.tBodies[0].rows.length : 0,
      tr: el.querySelectorAll('tr').length
    });
  });
  var images = Array.prototype.map.call(document.images, function (i) {
    return { w: i.naturalWidth, h: i.naturalHeight, complete: i.complete,
             png: i.getAttribute('src').indexOf('data:image/png;base64,') === 0 };
  });
  var broken = Array.prototype.filter.call(document.querySelectorAll('a[href^="#"]'), function (a) {
    return !document.getElementById(decodeURIComponent(a.getAttribute('href').slice(1)));
  }).map(function (a) { return a.getAttribute('href'); });
  var pre = document.createElement('pre');
  pre.id = '__check';
  pre.textContent = JSON.stringify({ tables: tables, images: images, broken_anchors: broken,
    runs_links: document.querySelectorAll('a.runs').length, errors: window.__errors });
  document.body.appendChild(pre);
});
</script>
"##;

/// The JSON array of `table.json` a table of the page counts, from its header (and section):
/// `None` for a table with no counterpart there (the paper-layout tables, the weights table).
fn json_counterpart(header: &[String], section: &str) -> Option<&'static str> {
    let h: Vec<&str> = header.iter().map(String::as_str).collect();
    if section.starts_with("the-papers-tables-in-its-layout") {
        return None;
    }
    Some(match h.as_slice() {
        ["Model", "Variant", "runs", ..] => "/runs_per_cell",
        ["predictor", ..] => "/ceilings",
        ["Model", "Variant", "Metric", "paper Δ", ..] => "/claims",
        ["Model", "Variant", "dropped", ..] => "/corruption/claims",
        ["Model", "Variant", "none", "T dropped", ..] => "/corruption/rows",
        ["Model", "Variant", "subset", ..] => "/subsets",
        ["Model", "Metric", ..] => "/text_only_control",
        ["Model", "Variant", "s / epoch"] => "/rows",
        ["Model", "Variant", "Acc7" | "Accuracy", "paper", ..] => "/rows",
        _ => return None,
    })
}

#[test]
fn html_report_opens_in_chromium() {
    let Some(browser) = chromium() else {
        eprintln!(
            "html_report_opens_in_chromium: skipped: no chromium, chromium-browser or google-chrome \
             on the PATH (apt-get install chromium; .ci/run installs it)"
        );
        return;
    };
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/quick5-flstm-mosi-synthetic");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("quick5-flstm-mosi-synthetic");
    std::fs::create_dir(&dir).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap();
        // the committed inputs only: the report is written afresh
        if name == "run.json" || name.to_string_lossy().starts_with("results") {
            std::fs::copy(&p, dir.join(name)).unwrap();
        }
    }
    let (code, _, err) = crate::common::run_bin(
        env!("CARGO_BIN_EXE_reproduce-paper"),
        &["report", "--from", dir.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let report = dir.join("report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    let md = std::fs::read_to_string(dir.join("table.md")).unwrap();
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("table.json")).unwrap()).unwrap();
    assert!(
        !html.to_ascii_lowercase().contains("<script"),
        "the page itself has no script"
    );
    only_our_markup(&html).unwrap();
    let csp = "default-src 'none'";
    assert!(
        html.contains(csp),
        "the page forbids every load but its data: images"
    );

    // 1. the page as written: no console message, a screenshot
    let url = |p: &Path| format!("file://{}", p.display());
    let shot = tmp.path().join("report.png");
    let (_, stderr) = headless(
        &browser,
        &tmp.path().join("profile-shot"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2400",
            "--hide-scrollbars",
        ],
        &url(&report),
    );
    assert_eq!(
        console_lines(&stderr),
        Vec::<&str>::new(),
        "console of the page"
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}\n{stderr}", shot.display()));
    assert!(png.len() > 1000, "screenshot of {} bytes", png.len());
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is a PNG"
    );

    // 2. a copy with the checking script (and the CSP letting inline scripts run, nothing else)
    let checked = html
        .replacen(csp, &format!("{csp}; script-src 'unsafe-inline'"), 1)
        .replacen(
            "<meta charset=\"utf-8\">\n",
            &format!("<meta charset=\"utf-8\">\n{CHECK_HEAD}"),
            1,
        );
    assert_ne!(checked, html);
    let copy = dir.join("report-checked.html");
    std::fs::write(&copy, &checked).unwrap();
    let (dom, stderr) = headless(
        &browser,
        &tmp.path().join("profile-dom"),
        &["--virtual-time-budget=5000", "--dump-dom"],
        &url(&copy),
    );
    assert_eq!(
        console_lines(&stderr),
        Vec::<&str>::new(),
        "console of the checked copy"
    );
    let start = dom
        .find("<pre id=\"__check\">")
        .unwrap_or_else(|| panic!("no check in\n{dom}\n{stderr}"));
    let body = &dom[start + "<pre id=\"__check\">".len()..];
    let body = &body[..body.find("</pre>").unwrap()];
    let body = body
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let check: Value = serde_json::from_str(&body).unwrap();
    eprintln!("html_report_opens_in_chromium: {check}");

    assert_eq!(check["errors"], serde_json::json!([]), "errors in the page");
    assert_eq!(
        check["broken_anchors"],
        serde_json::json!([]),
        "links without a target"
    );
    assert!(
        check["runs_links"].as_u64().unwrap()
            >= 2 * json["claims"].as_array().unwrap().len() as u64
    );

    let images = check["images"].as_array().unwrap();
    assert_eq!(
        images.len(),
        md.matches("![").count(),
        "one <img> per markdown image"
    );
    assert!(!images.is_empty());
    for img in images {
        assert!(
            img["complete"].as_bool().unwrap() && img["png"].as_bool().unwrap(),
            "{img}"
        );
        assert!(
            img["w"].as_u64().unwrap() > 0 && img["h"].as_u64().unwrap() > 0,
            "{img} did not decode"
        );
    }

    let tables = check["tables"].as_array().unwrap();
    let md_tables = markdown_tables(&md);
    assert_eq!(
        tables.len(),
        md_tables.len(),
        "one HTML table per markdown table"
    );
    let mut matched = Vec::new();
    for (t, (md_header, md_rows)) in tables.iter().zip(&md_tables) {
        let header: Vec<String> = serde_json::from_value(t["header"].clone()).unwrap();
        let rows = t["rows"].as_u64().unwrap() as usize;
        assert_eq!(&header, md_header);
        assert_eq!(rows, *md_rows, "rows of the table {header:?}");
        assert_eq!(
            t["tr"].as_u64().unwrap() as usize,
            rows + 1,
            "{header:?}: header row + rows"
        );
        if let Some(ptr) = json_counterpart(&header, t["section"].as_str().unwrap()) {
            let want = json.pointer(ptr).and_then(Value::as_array).map(Vec::len);
            assert_eq!(Some(rows), want, "table {header:?} against table.json{ptr}");
            matched.push(ptr);
        }
    }
    for ptr in [
        "/runs_per_cell",
        "/ceilings",
        "/claims",
        "/rows",
        "/corruption/rows",
        "/corruption/claims",
        "/subsets",
    ] {
        assert!(
            matched.contains(&ptr),
            "no table of the page counted against table.json{ptr}: {matched:?}"
        );
    }
}

#[test]
fn html_hostile_inputs_render_in_linear_time() {
    // each would take minutes with a quadratic scan; together they take well under a second
    let cases = [
        "[".repeat(200_000),
        "*a ".repeat(70_000),
        "` `` ".repeat(40_000),
        "[a](b".repeat(40_000),
        ">".repeat(100_000),
        "## a\n".repeat(20_000),
        "*[`".repeat(60_000),
        format!(
            "| Model | Variant | verdict |\n|---|---|---|\n| a | b | {}|\n",
            "supported xinconclusive ".repeat(20_000)
        ),
    ];
    let start = Instant::now();
    for md in &cases {
        let html = page(md);
        assert!(html.len() >= md.len() / 2);
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(30), "{took:?}");
}
