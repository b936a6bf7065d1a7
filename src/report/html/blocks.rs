//! The block structure of the markdown subset, parsed line by line: ATX headings, paragraphs,
//! blockquotes, bullet lists (with continuation lines) and pipe tables with their alignments.

use super::MAX_DEPTH;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Align {
    None,
    Left,
    Center,
    Right,
}

#[derive(Debug)]
pub(super) struct Table {
    pub(super) header: Vec<String>,
    pub(super) align: Vec<Align>,
    pub(super) rows: Vec<Vec<String>>,
}

#[derive(Debug)]
pub(super) enum Block {
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

pub(super) fn parse_blocks(lines: &[&str], depth: usize) -> Vec<Block> {
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
