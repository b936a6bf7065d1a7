//! The README and the book (`docs/src/`, built by `make docs`): every relative link and anchor
//! resolves, the README stays a front door (≤ 250 lines), and every chapter is in SUMMARY.md.
//! No network: http(s) and mailto links are skipped.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

const README_MAX_LINES: usize = 250;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The id mdBook and GitHub give a heading: lowercase; letters, digits, '-' and '_' kept; each
/// whitespace character becomes '-'; every other character is dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                Some(c)
            } else if c.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// `line` without its inline code spans (a run of n backticks up to the next run of exactly n).
fn strip_inline_code(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let mut n = 0;
        while i + n < chars.len() && chars[i + n] == '`' {
            n += 1;
        }
        // look for the closing run of exactly n backticks
        let mut j = i + n;
        let mut close = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let mut m = 0;
                while j + m < chars.len() && chars[j + m] == '`' {
                    m += 1;
                }
                if m == n {
                    close = Some(j + m);
                    break;
                }
                j += m;
            } else {
                j += 1;
            }
        }
        match close {
            Some(end) => {
                out.push(' ');
                i = end;
            }
            None => {
                // an unmatched run is literal text
                out.extend(std::iter::repeat_n('`', n));
                i += n;
            }
        }
    }
    out
}

/// The lines of a markdown file that are prose, as (1-based line number, line). Fenced code
/// blocks (``` or ~~~) and indented code blocks (4 spaces after a blank line) are left out.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut fence: Option<String> = None;
    let mut in_indented = false;
    let mut prev_blank = true;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(f) = &fence {
            if trimmed.starts_with(f.as_str())
                && trimmed.trim_start_matches(&f[..1]).trim().is_empty()
            {
                fence = None;
            }
            prev_blank = false;
            continue;
        }
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            let ch = trimmed.chars().next().unwrap();
            let n = trimmed.chars().take_while(|&c| c == ch).count();
            fence = Some(ch.to_string().repeat(n));
            in_indented = false;
            prev_blank = false;
            continue;
        }
        let blank = line.trim().is_empty();
        let indent = line.len() - trimmed.len();
        if !blank && indent >= 4 && (prev_blank || in_indented) {
            in_indented = true;
            prev_blank = false;
            continue;
        }
        if !blank {
            in_indented = false;
        }
        prev_blank = blank;
        out.push((i + 1, line));
    }
    out
}

/// The heading ids of a markdown file, with mdBook's and GitHub's "-1", "-2"… for repeats.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut ids = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let t = line.trim_start();
        let hashes = t.chars().take_while(|&c| c == '#').count();
        if hashes == 0 || hashes > 6 || !t[hashes..].starts_with(' ') {
            continue;
        }
        // a heading's id comes from its rendered text: code spans keep their text, links count
        // by their text
        let title = t[hashes..].trim().trim_end_matches('#').trim();
        let title = link_texts(title);
        let base = slug(&title);
        let n = seen.entry(base.clone()).or_insert(0);
        let id = if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        *n += 1;
        ids.insert(id);
    }
    ids
}

/// `[text](target)` → `text` (for headings).
fn link_texts(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find("](") {
            Some(close) => match after[close + 2..].find(')') {
                Some(end) => {
                    out.push_str(&after[..close]);
                    rest = &after[close + 2 + end + 1..];
                }
                None => {
                    out.push_str(&rest[open..]);
                    rest = "";
                }
            },
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The targets of the inline links and images of a prose line, `[text](target "title")`.
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while let Some(pos) = line[i..].find("](") {
        let start = i + pos + 2;
        // the target ends at the matching ')' (balanced parentheses, as CommonMark allows)
        let mut depth = 0usize;
        let mut end = None;
        for (k, &b) in bytes.iter().enumerate().skip(start) {
            match b {
                b'(' => depth += 1,
                b')' if depth == 0 => {
                    end = Some(k);
                    break;
                }
                b')' => depth -= 1,
                _ => {}
            }
        }
        let Some(end) = end else { break };
        let mut target = line[start..end].trim();
        if let Some(sp) = target.find(char::is_whitespace) {
            target = &target[..sp]; // drop a title
        }
        let target = target.trim_start_matches('<').trim_end_matches('>');
        if !target.is_empty() {
            out.push(target.to_string());
        }
        i = end;
    }
    out
}

/// Every broken relative link or anchor of `file`, as "file:line: target (why)".
fn broken_links(
    repo: &Path,
    file: &Path,
    cache: &mut HashMap<PathBuf, BTreeSet<String>>,
) -> Vec<String> {
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let own = anchors(&text);
    let dir = file.parent().unwrap();
    let name = file
        .strip_prefix(repo)
        .unwrap_or(file)
        .display()
        .to_string();
    let mut broken = Vec::new();
    for (n, line) in prose_lines(&text) {
        for target in link_targets(&strip_inline_code(line)) {
            let lower = target.to_ascii_lowercase();
            if lower.starts_with("http://")
                || lower.starts_with("https://")
                || lower.starts_with("mailto:")
            {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            if path.is_empty() {
                let a = anchor.unwrap_or("");
                if !own.contains(a) {
                    broken.push(format!(
                        "{name}:{n}: {target} (no heading with id `{a}` in this file)"
                    ));
                }
                continue;
            }
            let resolved = dir.join(path);
            if !resolved.exists() {
                broken.push(format!(
                    "{name}:{n}: {target} ({} does not exist)",
                    resolved.display()
                ));
                continue;
            }
            if let Some(a) = anchor {
                if !path.ends_with(".md") {
                    broken.push(format!(
                        "{name}:{n}: {target} (an anchor into a file that is not markdown)"
                    ));
                    continue;
                }
                let key = resolved.canonicalize().unwrap();
                let ids = cache
                    .entry(key.clone())
                    .or_insert_with(|| anchors(&fs::read_to_string(&key).unwrap()));
                if !ids.contains(a) {
                    broken.push(format!(
                        "{name}:{n}: {target} (no heading with id `{a}` in {path})"
                    ));
                }
            }
        }
    }
    broken
}

/// The markdown files under `dir`, recursively, sorted.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "md") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The chapters under `src` that SUMMARY.md does not link, as paths relative to `src`.
fn chapters_missing_from_summary(src: &Path) -> Vec<String> {
    let summary = fs::read_to_string(src.join("SUMMARY.md")).expect("docs/src/SUMMARY.md");
    let listed: BTreeSet<String> = prose_lines(&summary)
        .iter()
        .flat_map(|(_, l)| link_targets(&strip_inline_code(l)))
        .map(|t| {
            t.split('#')
                .next()
                .unwrap()
                .trim_start_matches("./")
                .to_string()
        })
        .collect();
    markdown_files(src)
        .into_iter()
        .map(|p| {
            p.strip_prefix(src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .filter(|rel| rel != "SUMMARY.md" && !listed.contains(rel))
        .collect()
}

fn all_docs(repo: &Path) -> Vec<PathBuf> {
    let mut files = vec![repo.join("README.md")];
    files.extend(markdown_files(&repo.join("docs/src")));
    files
}

#[test]
fn readme_and_book_links_and_anchors_resolve() {
    let repo = root();
    let mut cache = HashMap::new();
    let files = all_docs(&repo);
    assert!(
        files.len() > 5,
        "expected the README and the book's chapters, found {files:?}"
    );
    let broken: Vec<String> = files
        .iter()
        .flat_map(|f| broken_links(&repo, f, &mut cache))
        .collect();
    assert!(
        broken.is_empty(),
        "{} broken links:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn readme_is_at_most_250_lines() {
    let text = fs::read_to_string(root().join("README.md")).unwrap();
    let n = text.lines().count();
    assert!(
        n <= README_MAX_LINES,
        "README.md has {n} lines (at most {README_MAX_LINES}); move detail into a chapter of docs/src/"
    );
}

#[test]
fn every_chapter_is_listed_in_summary() {
    let missing = chapters_missing_from_summary(&root().join("docs/src"));
    assert!(
        missing.is_empty(),
        "docs/src/SUMMARY.md does not list: {missing:?}"
    );
}

/// The checker itself finds what it is meant to: a missing file, a missing anchor in another
/// file and in the same file, a chapter missing from SUMMARY.md; and it ignores code and the web.
#[test]
fn the_checker_reports_broken_links_and_unlisted_chapters() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("SUMMARY.md"), "# Summary\n\n- [A](a.md)\n").unwrap();
    fs::write(
        src.join("a.md"),
        "# The `a` chapter: first!\n\n## Twice\n\n## Twice\n\n\
         [ok](b.md#some_heading-here) [ok](#the-a-chapter-first) [ok](#twice-1) [web](https://x.invalid/y)\n\
         [gone](missing.md) and [bad anchor](b.md#nope) and [bad own](#twice-2)\n\
         `[in code](missing2.md)`\n\n```\n[fenced](missing3.md)\n```\n\n    [indented](missing4.md)\n",
    )
    .unwrap();
    fs::write(src.join("b.md"), "# B\n\n### Some_heading (here)\n").unwrap();
    let mut cache = HashMap::new();
    let broken = broken_links(dir.path(), &src.join("a.md"), &mut cache);
    assert_eq!(broken.len(), 3, "{broken:#?}");
    assert!(
        broken[0].starts_with("src/a.md:8: missing.md ("),
        "{broken:#?}"
    );
    assert!(
        broken[1].starts_with("src/a.md:8: b.md#nope ("),
        "{broken:#?}"
    );
    assert!(
        broken[2].starts_with("src/a.md:8: #twice-2 ("),
        "{broken:#?}"
    );
    assert_eq!(
        chapters_missing_from_summary(&src),
        vec!["b.md".to_string()]
    );
    assert_eq!(
        slug("Results: verdicts on MOSI, 5 seeds (committed)"),
        "results-verdicts-on-mosi-5-seeds-committed"
    );
    assert_eq!(
        slug("`reproduce-paper --device cuda`"),
        "reproduce-paper---device-cuda"
    );
}
