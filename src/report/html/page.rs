//! The page's frame: the inline style sheet (screen and print), the `<head>` with its
//! Content-Security-Policy, the header, the table of contents and the footer around the body.

use super::text::escape_into;

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

/// The whole page around the rendered `body`: the head (Content-Security-Policy, style), the
/// header with `title`, the contents (the headings of levels 1 to 3 in `toc`, when there are two
/// or more) and the footer.
pub(super) fn frame(title: &str, toc: &[(usize, String, String)], body: &str) -> String {
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
    let toc: Vec<_> = toc.iter().filter(|t| t.0 <= 3).collect();
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
    page.push_str(body);
    page.push_str(
        "</main>\n<footer class=\"page\">Written by <code>reproduce-paper</code> beside \
                   <code>table.md</code>, <code>table.json</code> and <code>table.csv</code>; \
                   no script, no network.</footer>\n</body>\n</html>\n",
    );
    page
}
