//! Inline markdown inside a block: code spans, `**strong**` and `*emphasis*` (CommonMark's
//! flanking rules), links, images and backslash escapes, rendered as escaped HTML.

use super::links::{alt_text, destination, image_uri, safe_href};
use super::render::Ctx;
use super::text::{escape_into, text_into, Marks};
use super::{HtmlError, MAX_DEPTH};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Copy)]
pub(super) struct Opts {
    /// Whether links are made (not inside a link).
    pub(super) links: bool,
    /// Which words of the text are wrapped in coloured spans.
    pub(super) marks: Marks,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            links: true,
            marks: Marks::None,
        }
    }
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
pub(super) fn inline(
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
