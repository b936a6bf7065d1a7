//! `report.html` in a browser: the page written by `reproduce-paper report --from`, opened in a
//! headless Chromium (skipped, saying why, where no Chromium is installed). The converter's own
//! tests are unit tests beside it (`src/report/html/tests.rs`).

#[path = "../../src/report/html/check.rs"]
mod check;

use check::{markdown_tables, only_our_markup};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
