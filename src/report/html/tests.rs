//! The converter's escaping, tables, links and images, and its base64 encoder (the page written
//! by `reproduce-paper report --from`, opened in a headless Chromium, is `tests/it/html_report.rs`).

use super::anchors::{runs_id, slug};
use super::check::{markdown_tables, only_our_markup};
use super::links::base64;
use super::{from_markdown, HtmlError};
use proptest::prelude::*;
use std::path::Path;
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
