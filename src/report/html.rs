//! `report.html`: one self-contained page (no network) of a results folder's report.
//!
//! [`from_markdown`] converts exactly the markdown subset the report generators write (`table.md`:
//! ATX headings, paragraphs, blockquotes, pipe tables, bullet lists, inline code, `**bold**`,
//! `*italic*`, links and images) into one HTML5 page: an inline `<style>`, the images inlined as
//! `data:` URIs (read relative to the results folder), no script, and a Content-Security-Policy
//! that forbids every network load. The markdown is treated as hostile: every character of it is
//! HTML-escaped (no raw HTML passes through) and links only go to `#anchors`, relative paths or
//! `http(s)` addresses.
//!
//! Two things beyond plain markdown, recognised by the tables' header cells:
//! - the verdict words of claims tables (`supported`, `contradicted`, `inconclusive`, the Holm
//!   marks) and the readings of the per-subset table (`helps`, `hurts`, `unclear`) are coloured
//!   by class;
//! - each row of the "runs per cell" table ([`super::tables::cell_runs_markdown`]) gets the id
//!   `runs-<model>-<variant>`, and the model and variant cells of each claim row link to it.
//!
//! The output is deterministic: the same markdown and images give the same bytes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path};

/// Errors while building the page.
#[derive(Debug, thiserror::Error)]
pub enum HtmlError {
    /// An image the markdown references could not be read (missing, unreadable).
    #[error("reading image {path}: {source}")]
    Image {
        /// The image's path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An image reference the page refuses to inline: a path outside the results folder, a URL,
    /// a file that is not a PNG, JPEG or GIF image, or one too large.
    #[error("image {src:?}: {reason}")]
    ImageRejected {
        /// The reference as written in the markdown.
        src: String,
        /// Why it is refused.
        reason: String,
    },
}

/// Largest image inlined (bytes).
const MAX_IMAGE_BYTES: u64 = 32 << 20;
/// Deepest nesting of blockquotes and of inline spans (links, emphasis) that is parsed; deeper
/// markup is shown as text.
const MAX_DEPTH: usize = 12;
/// Cells of more characters than this wrap; shorter ones stay on one line.
const LONG_CELL: usize = 40;
/// Ids the page's own frame uses (headings and table rows get other ones).
const RESERVED_IDS: [&str; 3] = ["contents", "report", "top"];

const STYLE: &str = r#"
:root { --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --stripe: #f6f8fa; --link: #0a58ca;
  --good: #1a7f37; --good-bg: #dafbe1; --bad: #cf222e; --bad-bg: #ffebe9;
  --mid: #7d4e00; --mid-bg: #fff8c5; --none: #57606a; --none-bg: #f6f8fa; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0 auto; max-width: 84rem; padding: 1.5rem 2rem 3rem; color: var(--fg);
  background: #fff; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
h1 { font-size: 1.6rem; margin: 0 0 .5rem; }
h2 { font-size: 1.3rem; margin: 2rem 0 .6rem; padding-bottom: .25rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.1rem; margin: 1.6rem 0 .5rem; }
h4, h5, h6 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
a { color: var(--link); }
a.anchor { margin-left: .4rem; color: var(--line); text-decoration: none; font-weight: normal; }
h1:hover a.anchor, h2:hover a.anchor, h3:hover a.anchor, h4:hover a.anchor { color: var(--muted); }
header.page { border-bottom: 2px solid var(--fg); margin-bottom: 1rem; }
header.page p { margin: 0 0 .6rem; color: var(--muted); }
nav#contents { font-size: .9rem; background: var(--stripe); border: 1px solid var(--line);
  border-radius: 6px; padding: .3rem 1rem; margin: 0 0 1rem; }
nav#contents summary { cursor: pointer; color: var(--muted); }
nav#contents ul { margin: .2rem 0; padding-left: 1.2rem; }
nav#contents li.l3 { margin-left: 1.2rem; }
code { font: .88em/1.4 ui-monospace, "DejaVu Sans Mono", monospace; background: var(--stripe);
  border-radius: 4px; padding: .05em .3em; }
blockquote { margin: 1rem 0; padding: .5rem 1rem; border-left: 4px solid #bf8700;
  background: #fff8c5; }
blockquote p { margin: .3rem 0; }
.table-wrap { overflow-x: auto; margin: .8rem 0 1.2rem; }
table { border-collapse: collapse; font-size: .88rem; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: .3rem .55rem; vertical-align: top; text-align: left; }
td { white-space: nowrap; }
td.long { white-space: normal; min-width: 14rem; }
th { background: var(--stripe); font-weight: 600; }
tbody tr:nth-child(even) td { background: #fbfcfd; }
td.al-r, th.al-r { text-align: right; }
td.al-c, th.al-c { text-align: center; }
tr:target td { outline: 2px solid var(--link); background: #ddf4ff; }
a.runs { color: inherit; text-decoration: underline dotted; }
.v-supported { color: var(--good); }
.v-contradicted { color: var(--bad); }
.v-inconclusive { color: var(--mid); }
.v-none { color: var(--none); }
td.v-supported { background: var(--good-bg) !important; }
td.v-contradicted { background: var(--bad-bg) !important; }
td.v-inconclusive { background: var(--mid-bg) !important; }
td.v-none { background: var(--none-bg) !important; font-style: italic; }
td.v-mixed { background: #fff !important; }
.holm-yes { font-weight: 700; color: var(--good); }
.holm-no { color: var(--muted); }
figure { margin: 1rem 0 1.5rem; }
figure img, p img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: .9rem; }
footer.page { margin-top: 3rem; padding-top: .5rem; border-top: 1px solid var(--line);
  color: var(--muted); font-size: .85rem; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  nav#contents, a.anchor { display: none; }
  a { color: inherit; text-decoration: none; }
  .table-wrap { overflow: visible; }
  table { font-size: 8pt; }
  tr, figure, blockquote { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
}
"#;

/// The page for `md` (a `table.md`), with images referenced relative to `dir` inlined; `title`
/// heads the page. Errors: an image that is missing or unreadable ([`HtmlError::Image`]) or
/// refused ([`HtmlError::ImageRejected`]).
pub fn from_markdown(md: &str, dir: &Path, title: &str) -> Result<String, HtmlError> {
    let lines: Vec<&str> = md.lines().collect();
    let blocks = parse_blocks(&lines, 0);
    let mut ctx = Ctx {
        dir,
        used_ids: RESERVED_IDS.iter().map(|s| s.to_string()).collect(),
        suffixes: HashMap::new(),
        runs: HashMap::new(),
        row_ids: HashSet::new(),
        images: HashMap::new(),
        toc: Vec::new(),
    };
    assign_runs_ids(&blocks, &mut ctx);
    let mut body = String::new();
    render_blocks(&blocks, &mut ctx, &mut body)?;

    let mut page = String::with_capacity(body.len() + STYLE.len() + 4096);
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    page.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         img-src data:; style-src 'unsafe-inline'\">\n",
    );
    page.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    page.push_str("<meta name=\"generator\" content=\"reproduce-paper\">\n");
    page.push_str("<link rel=\"icon\" href=\"data:,\">\n<title>");
    escape_into(title, &mut page);
    page.push_str("</title>\n<style>");
    page.push_str(STYLE);
    page.push_str("</style>\n</head>\n<body id=\"top\">\n<header class=\"page\">\n<h1>");
    escape_into(title, &mut page);
    page.push_str("</h1>\n<p>The report of <code>table.md</code> beside this page, \
                   self-contained: the forest plots are inlined, nothing is loaded from elsewhere.</p>\n</header>\n");
    let toc: Vec<_> = ctx.toc.iter().filter(|t| t.0 <= 3).collect();
    if toc.len() > 1 {
        page.push_str(&format!(
            "<nav id=\"contents\"><details><summary>Contents ({} sections)</summary>\n<ul>\n",
            toc.len()
        ));
        for (level, id, html) in toc {
            page.push_str(&format!(
                "<li class=\"l{level}\"><a href=\"#{id}\">{html}</a></li>\n"
            ));
        }
        page.push_str("</ul>\n</details></nav>\n");
    }
    page.push_str("<main id=\"report\">\n");
    page.push_str(&body);
    page.push_str(
        "</main>\n<footer class=\"page\">Written by <code>reproduce-paper</code> beside \
                   <code>table.md</code>, <code>table.json</code> and <code>table.csv</code>; \
                   no script, no network.</footer>\n</body>\n</html>\n",
    );
    Ok(page)
}

/// Standard base64 (RFC 4648 §4, with `=` padding) of `bytes`.
pub fn base64(bytes: &[u8]) -> String {
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

/// GitHub's heading anchor of a heading's text: lower case, every character but letters, digits,
/// `-`, `_` and spaces dropped, spaces turned into `-` (duplicates get `-1`, `-2`, … in the page).
pub fn slug(text: &str) -> String {
    text.chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The id of the "runs per cell" row of (`model`, `variant`) before de-duplication:
/// `runs-<model>-<variant>`, each part lower case with runs of other characters than letters and
/// digits turned into one `-` (`FLSTM`, `NLL+SKL` → `runs-flstm-nll-skl`).
pub fn runs_id(model: &str, variant: &str) -> String {
    let part = |s: &str| {
        let mut out = String::new();
        for c in s.chars().flat_map(char::to_lowercase) {
            if c.is_alphanumeric() {
                out.push(c);
            } else if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
        }
        while out.ends_with('-') {
            out.pop();
        }
        out
    };
    format!("runs-{}-{}", part(model), part(variant))
}

// ---------------------------------------------------------------------------------------------
// blocks

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    None,
    Left,
    Center,
    Right,
}

#[derive(Debug)]
struct Table {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

#[derive(Debug)]
enum Block {
    Heading(usize, String),
    Paragraph(Vec<String>),
    Quote(Vec<Block>),
    List(Vec<String>),
    Table(Table),
}

/// `#`…`######` followed by a space (or nothing): the level and the text without a closing
/// sequence of `#`.
fn heading(line: &str) -> Option<(usize, String)> {
    let t = line.trim_start_matches(' ');
    if line.len() - t.len() > 3 {
        return None;
    }
    let level = t.bytes().take_while(|&b| b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &t[level..];
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
        return None;
    }
    let mut text = rest.trim();
    // an optional closing sequence: spaces then only `#`s
    let stripped = text.trim_end_matches('#');
    if stripped.is_empty() {
        text = "";
    } else if stripped.ends_with(' ') || stripped.ends_with('\t') {
        text = stripped.trim_end();
    }
    Some((level, text.to_string()))
}

/// A bullet item's text (`- `, `* `, `+ `).
fn bullet(line: &str) -> Option<&str> {
    let t = line.trim_start_matches(' ');
    if line.len() - t.len() > 3 {
        return None;
    }
    let mut chars = t.chars();
    match (chars.next(), chars.next()) {
        (Some('-' | '*' | '+'), Some(' ' | '\t')) => Some(t[2..].trim()),
        (Some('-' | '*' | '+'), None) => Some(""),
        _ => None,
    }
}

fn quote_line(line: &str) -> Option<&str> {
    let t = line.trim_start_matches(' ');
    if line.len() - t.len() > 3 {
        return None;
    }
    let rest = t.strip_prefix('>')?;
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

/// The cells of a table row (`| a | b \| c |`): split on unescaped pipes, `\|` turned into `|`.
fn split_row(line: &str) -> Vec<String> {
    let t = line.trim();
    let t = t.strip_prefix('|').unwrap_or(t);
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut chars = t.chars().peekable();
    let mut trailing_pipe = false;
    while let Some(c) = chars.next() {
        trailing_pipe = false;
        match c {
            '\\' => match chars.peek() {
                Some('|') => {
                    cur.push('|');
                    chars.next();
                }
                Some(&n) => {
                    cur.push('\\');
                    cur.push(n);
                    chars.next();
                }
                None => cur.push('\\'),
            },
            '|' => {
                cells.push(cur.trim().to_string());
                cur.clear();
                trailing_pipe = true;
            }
            c => cur.push(c),
        }
    }
    if !trailing_pipe {
        cells.push(cur.trim().to_string());
    }
    cells
}

/// The alignments of a separator row (`|---|:--:|`), or `None` when `line` is not one.
fn separator(line: &str) -> Option<Vec<Align>> {
    let t = line.trim();
    if !t.contains('-') || !t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' ' | '\t')) {
        return None;
    }
    split_row(t)
        .iter()
        .map(|c| {
            let left = c.starts_with(':');
            let right = c.ends_with(':');
            let dashes = c.trim_matches(':');
            if dashes.is_empty() || !dashes.chars().all(|d| d == '-') {
                return None;
            }
            Some(match (left, right) {
                (true, true) => Align::Center,
                (true, false) => Align::Left,
                (false, true) => Align::Right,
                (false, false) => Align::None,
            })
        })
        .collect()
}

fn table_start(lines: &[&str], i: usize) -> Option<(Vec<String>, Vec<Align>)> {
    let head = lines[i];
    if !head.trim_start().starts_with('|') {
        return None;
    }
    let align = separator(lines.get(i + 1)?)?;
    let header = split_row(head);
    (header.len() == align.len()).then_some((header, align))
}

fn starts_block(lines: &[&str], i: usize) -> bool {
    let l = lines[i];
    heading(l).is_some()
        || quote_line(l).is_some()
        || bullet(l).is_some()
        || table_start(lines, i).is_some()
}

fn parse_blocks(lines: &[&str], depth: usize) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() {
            i += 1;
            continue;
        }
        if let Some((level, text)) = heading(line) {
            blocks.push(Block::Heading(level, text));
            i += 1;
            continue;
        }
        if depth < MAX_DEPTH && quote_line(line).is_some() {
            let mut inner = Vec::new();
            while let Some(q) = lines.get(i).and_then(|l| quote_line(l)) {
                inner.push(q);
                i += 1;
            }
            blocks.push(Block::Quote(parse_blocks(&inner, depth + 1)));
            continue;
        }
        if let Some((header, align)) = table_start(lines, i) {
            let width = header.len();
            i += 2;
            let mut rows = Vec::new();
            while let Some(l) = lines.get(i) {
                if l.trim().is_empty() || !l.trim_start().starts_with('|') {
                    break;
                }
                let mut cells = split_row(l);
                cells.resize(width, String::new());
                rows.push(cells);
                i += 1;
            }
            blocks.push(Block::Table(Table {
                header,
                align,
                rows,
            }));
            continue;
        }
        if bullet(line).is_some() {
            let mut items: Vec<String> = Vec::new();
            while let Some(l) = lines.get(i) {
                if let Some(item) = bullet(l) {
                    items.push(item.to_string());
                } else if !l.trim().is_empty()
                    && l.starts_with("  ")
                    && !items.is_empty()
                    && heading(l).is_none()
                {
                    // a continuation line of the item
                    if let Some(last) = items.last_mut() {
                        last.push('\n');
                        last.push_str(l.trim());
                    }
                } else {
                    break;
                }
                i += 1;
            }
            blocks.push(Block::List(items));
            continue;
        }
        let mut para = vec![line.trim().to_string()];
        i += 1;
        while i < lines.len() && !lines[i].trim().is_empty() && !starts_block(lines, i) {
            para.push(lines[i].trim().to_string());
            i += 1;
        }
        blocks.push(Block::Paragraph(para));
    }
    blocks
}

// ---------------------------------------------------------------------------------------------
// rendering

struct Ctx<'d> {
    dir: &'d Path,
    used_ids: HashSet<String>,
    /// The last `-k` suffix tried per id base.
    suffixes: HashMap<String, usize>,
    /// (model, variant) of a "runs per cell" row → its id.
    runs: HashMap<(String, String), String>,
    /// The runs ids already given to a row.
    row_ids: HashSet<String>,
    /// image reference → its `data:` URI.
    images: HashMap<String, String>,
    /// (level, id, inner HTML) of each heading.
    toc: Vec<(usize, String, String)>,
}

impl Ctx<'_> {
    /// `base`, or `base-1`, `base-2`, … : the first not yet used, now used.
    fn unique_id(&mut self, base: &str) -> String {
        let base = if base.is_empty() { "section" } else { base };
        let mut id = base.to_string();
        // the suffixes tried before for this base are taken: start after them
        let k = self.suffixes.entry(base.to_string()).or_insert(0);
        while self.used_ids.contains(&id) {
            *k += 1;
            id = format!("{base}-{k}");
        }
        self.used_ids.insert(id.clone());
        id
    }
}

/// What a table is, from its header cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TableKind {
    /// "Runs behind each cell": rows get ids.
    Runs,
    /// A table of claims (a `verdict`/`verdicts` column): model/variant cells link to the runs.
    Claims,
    Other,
}

fn table_kind(t: &Table) -> TableKind {
    let h = |k: usize| t.header.get(k).map(|s| s.trim());
    if h(0) == Some("Model") && h(1) == Some("Variant") {
        if h(2) == Some("runs") {
            return TableKind::Runs;
        }
        if t.header
            .iter()
            .any(|c| matches!(c.trim(), "verdict" | "verdicts"))
        {
            return TableKind::Claims;
        }
    }
    TableKind::Other
}

fn cell_key(model: &str, variant: &str) -> (String, String) {
    (model.trim().to_string(), variant.trim().to_string())
}

/// Gives each row of every "runs per cell" table its id (before any heading takes one).
fn assign_runs_ids(blocks: &[Block], ctx: &mut Ctx) {
    for b in blocks {
        match b {
            Block::Table(t) if table_kind(t) == TableKind::Runs => {
                for r in &t.rows {
                    let key = cell_key(&r[0], &r[1]);
                    if !ctx.runs.contains_key(&key) {
                        let id = ctx.unique_id(&runs_id(&key.0, &key.1));
                        ctx.runs.insert(key, id);
                    }
                }
            }
            Block::Quote(inner) => assign_runs_ids(inner, ctx),
            _ => {}
        }
    }
}

fn render_blocks(blocks: &[Block], ctx: &mut Ctx, out: &mut String) -> Result<(), HtmlError> {
    for b in blocks {
        match b {
            Block::Heading(level, text) => {
                let mut html = String::new();
                inline(text, ctx, Opts::default(), 0, &mut html)?;
                let id = ctx.unique_id(&slug(&strip_tags(&html)));
                out.push_str(&format!(
                    "<h{level} id=\"{id}\">{html}<a class=\"anchor\" href=\"#{id}\" \
                     aria-label=\"link to this section\">#</a></h{level}>\n"
                ));
                let mut toc_html = String::new();
                inline(
                    text,
                    ctx,
                    Opts {
                        links: false,
                        ..Opts::default()
                    },
                    0,
                    &mut toc_html,
                )?;
                ctx.toc.push((*level, id, toc_html));
            }
            Block::Paragraph(lines) => {
                let text = lines.join("\n");
                if let Some((alt, src)) = lone_image(&text) {
                    let uri = image_uri(&src, ctx)?;
                    out.push_str("<figure><img src=\"");
                    out.push_str(&uri);
                    out.push_str("\" alt=\"");
                    escape_into(&alt, out);
                    out.push_str("\"><figcaption>");
                    escape_into(&alt, out);
                    out.push_str("</figcaption></figure>\n");
                } else {
                    out.push_str("<p>");
                    inline(&text, ctx, Opts::default(), 0, out)?;
                    out.push_str("</p>\n");
                }
            }
            Block::Quote(inner) => {
                out.push_str("<blockquote>\n");
                render_blocks(inner, ctx, out)?;
                out.push_str("</blockquote>\n");
            }
            Block::List(items) => {
                out.push_str("<ul>\n");
                for item in items {
                    out.push_str("<li>");
                    inline(item, ctx, Opts::default(), 0, out)?;
                    out.push_str("</li>\n");
                }
                out.push_str("</ul>\n");
            }
            Block::Table(t) => render_table(t, ctx, out)?,
        }
    }
    Ok(())
}

/// The column's role for colouring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Verdict,
    Reading,
    Plain,
}

fn render_table(t: &Table, ctx: &mut Ctx, out: &mut String) -> Result<(), HtmlError> {
    let kind = table_kind(t);
    let columns: Vec<Column> = t
        .header
        .iter()
        .map(|h| match h.trim() {
            "verdict" | "verdicts" => Column::Verdict,
            "reading" if kind != TableKind::Runs => Column::Reading,
            _ => Column::Plain,
        })
        .collect();
    let align_class = |a: Align| match a {
        Align::Right => " class=\"al-r\"",
        Align::Center => " class=\"al-c\"",
        Align::Left | Align::None => "",
    };
    out.push_str("<div class=\"table-wrap\"><table>\n<thead><tr>");
    for (h, a) in t.header.iter().zip(&t.align) {
        out.push_str(&format!("<th{}>", align_class(*a)));
        inline(h, ctx, Opts::default(), 0, out)?;
        out.push_str("</th>");
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &t.rows {
        let key = cell_key(&row[0], row.get(1).map_or("", |s| s.as_str()));
        let link = match kind {
            TableKind::Claims => ctx.runs.get(&key).cloned(),
            _ => None,
        };
        match kind {
            TableKind::Runs => match ctx.runs.get(&key) {
                // a repeated (model, variant) row keeps the first row's id
                Some(id) if ctx.row_ids.insert(id.clone()) => {
                    out.push_str(&format!("<tr id=\"{id}\">"))
                }
                _ => out.push_str("<tr>"),
            },
            _ => out.push_str("<tr>"),
        }
        for (k, cell) in row.iter().enumerate() {
            let col = columns.get(k).copied().unwrap_or(Column::Plain);
            let mut classes: Vec<&str> = Vec::new();
            match t.align.get(k) {
                Some(Align::Right) => classes.push("al-r"),
                Some(Align::Center) => classes.push("al-c"),
                _ => {}
            }
            let marks = match col {
                Column::Verdict => {
                    classes.push("verdict");
                    classes.extend(verdict_class(cell));
                    Marks::Verdicts
                }
                Column::Reading => {
                    classes.extend(reading_class(cell));
                    Marks::Readings
                }
                Column::Plain => Marks::None,
            };
            // short cells keep to one line ("69.9 ± 1.1"), long ones wrap
            if cell.chars().count() > LONG_CELL {
                classes.push("long");
            }
            if classes.is_empty() {
                out.push_str("<td>");
            } else {
                out.push_str(&format!("<td class=\"{}\">", classes.join(" ")));
            }
            match (&link, k) {
                (Some(id), 0 | 1) => {
                    out.push_str(&format!(
                        "<a class=\"runs\" href=\"#{id}\" title=\"the runs behind this cell\">"
                    ));
                    inline(
                        cell,
                        ctx,
                        Opts {
                            links: false,
                            marks,
                        },
                        0,
                        out,
                    )?;
                    out.push_str("</a>");
                }
                _ => inline(cell, ctx, Opts { links: true, marks }, 0, out)?,
            }
            out.push_str("</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table></div>\n");
    Ok(())
}

/// Words coloured in a column, with their classes (matched as whole words, first match wins).
const VERDICT_WORDS: [(&str, &str); 7] = [
    ("survives Holm", "holm-yes"),
    ("not after Holm", "holm-no"),
    ("Holm ✓", "holm-yes"),
    ("supported", "v-supported"),
    ("contradicted", "v-contradicted"),
    ("inconclusive", "v-inconclusive"),
    ("not measured", "v-none"),
];
const READING_WORDS: [(&str, &str); 3] = [
    ("helps", "v-supported"),
    ("hurts", "v-contradicted"),
    ("unclear", "v-inconclusive"),
];

/// The class of a verdict cell: its one verdict, `v-mixed` for several (the paper layout's
/// "Acc2 contradicted, MAE inconclusive"), `v-none` for a cell without a verdict (`— (reason)`).
fn verdict_class(cell: &str) -> Option<&'static str> {
    let found: Vec<&str> = ["supported", "contradicted", "inconclusive"]
        .into_iter()
        .filter(|w| find_word(cell, w, 0).is_some())
        .collect();
    match found.as_slice() {
        [one] => Some(match *one {
            "supported" => "v-supported",
            "contradicted" => "v-contradicted",
            _ => "v-inconclusive",
        }),
        [] if cell.trim_start().starts_with('—')
            || find_word(cell, "not measured", 0).is_some() =>
        {
            Some("v-none")
        }
        [] => None,
        _ => Some("v-mixed"),
    }
}

fn reading_class(cell: &str) -> Option<&'static str> {
    READING_WORDS
        .iter()
        .find(|(w, _)| find_word(cell, w, 0).is_some())
        .map(|(_, c)| *c)
}

/// The byte offset of `word` in `s` at or after `from`, as a whole word (no letter or digit on
/// either side).
fn find_word(s: &str, word: &str, from: usize) -> Option<usize> {
    let mut start = from;
    while let Some(pos) = s.get(start..).and_then(|t| t.find(word)) {
        let at = start + pos;
        let before = s[..at].chars().next_back();
        let after = s[at + word.len()..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
        if boundary(before) && boundary(after) {
            return Some(at);
        }
        start = at + word.len();
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Marks {
    #[default]
    None,
    Verdicts,
    Readings,
}

#[derive(Debug, Clone, Copy)]
struct Opts {
    /// Whether links are made (not inside a link).
    links: bool,
    /// Which words of the text are wrapped in coloured spans.
    marks: Marks,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            links: true,
            marks: Marks::None,
        }
    }
}

/// Text, escaped, with the words of `marks` wrapped in spans.
fn text_into(s: &str, marks: Marks, out: &mut String) {
    let words: &[(&str, &str)] = match marks {
        Marks::None => {
            escape_into(s, out);
            return;
        }
        Marks::Verdicts => &VERDICT_WORDS,
        Marks::Readings => &READING_WORDS,
    };
    // the next whole-word occurrence of each word at or after `done`
    let mut next: Vec<Option<usize>> = words.iter().map(|(w, _)| find_word(s, w, 0)).collect();
    let mut done = 0;
    loop {
        for (slot, (w, _)) in next.iter_mut().zip(words) {
            if slot.is_some_and(|at| at < done) {
                *slot = find_word(s, w, done);
            }
        }
        // the earliest, the longest at a tie
        let first = next
            .iter()
            .zip(words)
            .filter_map(|(at, (w, c))| at.map(|at| (at, *w, *c)))
            .min_by_key(|(at, w, _)| (*at, std::cmp::Reverse(w.len())));
        match first {
            Some((at, w, class)) => {
                escape_into(&s[done..at], out);
                out.push_str(&format!("<span class=\"{class}\">"));
                escape_into(w, out);
                out.push_str("</span>");
                done = at + w.len();
            }
            None => {
                escape_into(&s[done..], out);
                return;
            }
        }
    }
}

/// HTML-escapes `s` (text and attribute values alike); NUL and other C0 controls but tab and
/// newlines become U+FFFD.
fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            '\r' => out.push('\n'),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

/// The text of our own HTML: tags dropped, entities decoded (every `<` in it starts a tag: text
/// is escaped).
fn strip_tags(html: &str) -> String {
    let mut s = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => s.push(c),
            _ => {}
        }
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// A paragraph that is only an image: its alt text and source.
fn lone_image(text: &str) -> Option<(String, String)> {
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
fn destination(s: &str, at: usize) -> Option<(String, usize)> {
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
fn alt_text(s: &str) -> String {
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
fn safe_href(url: &str) -> bool {
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
fn image_uri(src: &str, ctx: &mut Ctx) -> Result<String, HtmlError> {
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

/// Whether the `*` run `[at, at + len)` of `s` may open emphasis (CommonMark's left-flanking rule).
fn can_open(s: &str, at: usize, len: usize) -> bool {
    let before = s[..at].chars().next_back();
    match s[at + len..].chars().next() {
        None => false,
        Some(n) if n.is_whitespace() => false,
        Some(n) if is_punct(n) => before.is_none_or(|b| b.is_whitespace() || is_punct(b)),
        Some(_) => true,
    }
}

/// Whether the `*` run `[at, at + len)` of `s` may close emphasis (right-flanking).
fn can_close(s: &str, at: usize, len: usize) -> bool {
    let after = s[at + len..].chars().next();
    match s[..at].chars().next_back() {
        None => false,
        Some(p) if p.is_whitespace() => false,
        Some(p) if is_punct(p) => after.is_none_or(|a| a.is_whitespace() || is_punct(a)),
        Some(_) => true,
    }
}

fn is_punct(c: char) -> bool {
    c.is_ascii_punctuation() || (!c.is_alphanumeric() && !c.is_whitespace() && !c.is_control())
}

/// The runs of `*` in `s` that may close emphasis, in order, as (run start, closing position):
/// for `*` (runs of 1 or at least 3 stars: the last star) and for `**` (runs of at least 2: the
/// last two).
type Closers = (Vec<(usize, usize)>, Vec<(usize, usize)>);

fn star_closers(s: &str) -> Closers {
    let b = s.as_bytes();
    let (mut single, mut double) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'*' => {
                let len = b[i..].iter().take_while(|&&c| c == b'*').count();
                if can_close(s, i, len) {
                    if len != 2 {
                        single.push((i, i + len - 1));
                    }
                    if len >= 2 {
                        double.push((i, i + len - 2));
                    }
                }
                i += len;
            }
            _ => i += 1,
        }
    }
    (single, double)
}

/// Inline markdown of `s` as HTML into `out`: code spans, `**strong**`, `*emphasis*`, links,
/// images, backslash escapes; everything else escaped text.
fn inline(
    s: &str,
    ctx: &mut Ctx,
    opts: Opts,
    depth: usize,
    out: &mut String,
) -> Result<(), HtmlError> {
    if depth >= MAX_DEPTH {
        text_into(s, opts.marks, out);
        return Ok(());
    }
    let b = s.as_bytes();
    let closers = star_closers(s);
    // backtick runs by length: their starts, in order
    let mut ticks: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    {
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'`' {
                let len = b[i..].iter().take_while(|&&c| c == b'`').count();
                ticks.entry(len).or_default().push(i);
                i += len;
            } else {
                i += 1;
            }
        }
    }
    // `[` → its matching `]` (escapes skipped, nesting counted)
    let mut brackets: HashMap<usize, usize> = HashMap::new();
    {
        let mut stack = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 1,
                b'[' => stack.push(i),
                b']' => {
                    if let Some(open) = stack.pop() {
                        brackets.insert(open, i);
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
    let link_at = |open: usize| {
        let close = *brackets.get(&open)?;
        Some((close, destination(s, close + 1)?))
    };
    let mut plain = 0; // start of the pending text
    let mut i = 0;
    let flush = |out: &mut String, from: usize, to: usize| text_into(&s[from..to], opts.marks, out);
    while i < b.len() {
        match b[i] {
            b'\\' if b.get(i + 1).is_some_and(|c| c.is_ascii_punctuation()) => {
                flush(out, plain, i);
                text_into(&s[i + 1..i + 2], opts.marks, out);
                i += 2;
                plain = i;
            }
            b'`' => {
                let len = b[i..].iter().take_while(|&&c| c == b'`').count();
                let close = ticks.get(&len).and_then(|starts| {
                    let k = starts.partition_point(|&p| p <= i);
                    starts.get(k).copied()
                });
                match close {
                    Some(j) => {
                        flush(out, plain, i);
                        let code = s[i + len..j].replace('\n', " ");
                        let code = if code.len() >= 2
                            && code.starts_with(' ')
                            && code.ends_with(' ')
                            && !code.trim().is_empty()
                        {
                            &code[1..code.len() - 1]
                        } else {
                            code.as_str()
                        };
                        out.push_str("<code>");
                        escape_into(code, out);
                        out.push_str("</code>");
                        i = j + len;
                        plain = i;
                    }
                    None => i += len,
                }
            }
            b'*' => {
                let len = b[i..].iter().take_while(|&&c| c == b'*').count();
                let mut done = false;
                if can_open(s, i, len) {
                    // `**`: the first later closing run of at least 2 stars (its last two); `*`:
                    // the first of 1 or at least 3 (its last)
                    let want = if len >= 2 { [2, 1] } else { [1, 0] };
                    for w in want.into_iter().filter(|&w| w > 0) {
                        let start = i + w;
                        // (run start, where the closing stars start) of the runs that may close
                        let list = if w == 2 { &closers.1 } else { &closers.0 };
                        let k = list.partition_point(|&(p, _)| p < start);
                        let close = list[k..]
                            .iter()
                            .take(2)
                            .map(|&(_, at)| at)
                            .find(|&at| at > start);
                        if let Some(j) = close {
                            flush(out, plain, i);
                            let tag = if w == 2 { "strong" } else { "em" };
                            out.push_str(&format!("<{tag}>"));
                            inline(&s[start..j], ctx, opts, depth + 1, out)?;
                            out.push_str(&format!("</{tag}>"));
                            i = j + w;
                            plain = i;
                            done = true;
                            break;
                        }
                    }
                }
                if !done {
                    i += len;
                }
            }
            b'!' if b.get(i + 1) == Some(&b'[') => match link_at(i + 1) {
                Some((close, (dest, end))) => {
                    flush(out, plain, i);
                    let uri = image_uri(&dest, ctx)?;
                    let alt = alt_text(&s[i + 2..close]);
                    out.push_str("<img src=\"");
                    out.push_str(&uri);
                    out.push_str("\" alt=\"");
                    escape_into(&alt, out);
                    out.push_str("\">");
                    i = end;
                    plain = i;
                }
                None => i += 1,
            },
            b'[' if opts.links => {
                match link_at(i) {
                    Some((close, (dest, end))) => {
                        flush(out, plain, i);
                        let inner = Opts {
                            links: false,
                            ..opts
                        };
                        if safe_href(&dest) {
                            out.push_str("<a href=\"");
                            escape_into(&dest, out);
                            out.push_str("\">");
                            inline(&s[i + 1..close], ctx, inner, depth + 1, out)?;
                            out.push_str("</a>");
                        } else {
                            // a refused destination: the link's text only
                            inline(&s[i + 1..close], ctx, inner, depth + 1, out)?;
                        }
                        i = end;
                        plain = i;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    flush(out, plain, b.len());
    Ok(())
}
