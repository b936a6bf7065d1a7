//! Markdown text helpers shared by every layer that prints a table (the cost plan of
//! [`crate::experiments`], the reports, the CLIs): a neutral module beside the layers, so a layer
//! below [`crate::report`] never imports from it.

/// A markdown pipe table from a header and rows (one `|`-separated line each, the `|---|` rule
/// after the header; cells as given, no escaping).
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!("| {} |\n", header.join(" | "));
    s += &format!("|{}\n", "---|".repeat(header.len()));
    for r in rows {
        s += &format!("| {} |\n", r.join(" | "));
    }
    s
}
