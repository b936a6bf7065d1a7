//! Rendering the parsed blocks as HTML: the rendering state (the ids taken, the runs rows' ids,
//! the inlined images, the table of contents), headings with their anchors, paragraphs, lone
//! images as figures, quotes, lists, and tables with their verdict and reading columns coloured.

use super::anchors::{cell_key, slug, table_kind, TableKind};
use super::blocks::{Align, Block, Table};
use super::inline::{inline, Opts};
use super::links::{image_uri, lone_image};
use super::text::{escape_into, reading_class, strip_tags, verdict_class, Marks};
use super::{HtmlError, LONG_CELL};
use std::collections::{HashMap, HashSet};
use std::path::Path;

pub(super) struct Ctx<'d> {
    pub(super) dir: &'d Path,
    pub(super) used_ids: HashSet<String>,
    /// The last `-k` suffix tried per id base.
    pub(super) suffixes: HashMap<String, usize>,
    /// (model, variant) of a "runs per cell" row → its id.
    pub(super) runs: HashMap<(String, String), String>,
    /// The runs ids already given to a row.
    pub(super) row_ids: HashSet<String>,
    /// image reference → its `data:` URI.
    pub(super) images: HashMap<String, String>,
    /// (level, id, inner HTML) of each heading.
    pub(super) toc: Vec<(usize, String, String)>,
}

impl Ctx<'_> {
    /// `base`, or `base-1`, `base-2`, … : the first not yet used, now used.
    pub(super) fn unique_id(&mut self, base: &str) -> String {
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

pub(super) fn render_blocks(
    blocks: &[Block],
    ctx: &mut Ctx,
    out: &mut String,
) -> Result<(), HtmlError> {
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
