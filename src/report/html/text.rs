//! Text: HTML escaping of everything the markdown says (no raw HTML passes), the plain text of
//! rendered HTML (for heading slugs), and the verdict and reading words wrapped in coloured spans
//! and classes.

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
pub(super) fn verdict_class(cell: &str) -> Option<&'static str> {
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

pub(super) fn reading_class(cell: &str) -> Option<&'static str> {
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
pub(super) enum Marks {
    #[default]
    None,
    Verdicts,
    Readings,
}

/// Text, escaped, with the words of `marks` wrapped in spans.
pub(super) fn text_into(s: &str, marks: Marks, out: &mut String) {
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
pub(super) fn escape_into(s: &str, out: &mut String) {
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
pub(super) fn strip_tags(html: &str) -> String {
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
