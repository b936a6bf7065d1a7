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
//! - each row of the "runs per cell" table (`tables::cell_runs_markdown`) gets the id
//!   `runs-<model>-<variant>`, and the model and variant cells of each claim row link to it.
//!
//! The output is deterministic: the same markdown and images give the same bytes.
//!
//! The rooms of this module: `blocks.rs` parses the lines into blocks, `render.rs` renders the
//! blocks and tables, `inline.rs` the spans inside them, `links.rs` the link destinations and the
//! inlined images, `text.rs` the escaping and the coloured verdict words, `anchors.rs` the ids and
//! the links from claims to their runs, `page.rs` the frame (style, head, contents, footer).

use std::collections::{HashMap, HashSet};
use std::path::Path;

mod anchors;
mod blocks;
mod inline;
mod links;
mod page;
mod render;
mod text;

use anchors::assign_runs_ids;
use blocks::parse_blocks;
use render::{render_blocks, Ctx};

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

/// Deepest nesting of blockquotes and of inline spans (links, emphasis) that is parsed; deeper
/// markup is shown as text.
const MAX_DEPTH: usize = 12;
/// Cells of more characters than this wrap; shorter ones stay on one line.
const LONG_CELL: usize = 40;
/// Ids the page's own frame uses (headings and table rows get other ones).
const RESERVED_IDS: [&str; 3] = ["contents", "report", "top"];

/// The page for `md` (a `table.md`), with images referenced relative to `dir` inlined; `title`
/// heads the page. Errors: an image that is missing or unreadable ([`HtmlError::Image`]) or
/// refused ([`HtmlError::ImageRejected`]).
pub(crate) fn from_markdown(md: &str, dir: &Path, title: &str) -> Result<String, HtmlError> {
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
    Ok(page::frame(title, &ctx.toc, &body))
}

#[cfg(test)]
mod check;
#[cfg(test)]
mod tests;
