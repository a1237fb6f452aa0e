//! Names are data: every text that reaches an output passes through the escape of its
//! context here. Namespaces, workload, container and HPA names come from the Kubernetes API
//! or, without it, from label values in Prometheus, which anyone who can push a series
//! (a Pushgateway scraped with `honor_labels`) controls. So a name may hold a backtick, a
//! newline, `<img src=...>`, `=HYPERLINK(...)` or an escape sequence that sets the terminal
//! title; each output shows it as text and never lets it act:
//! - [`visible`]: control characters (C0, DEL, C1) and the bidirectional overrides that
//!   reorder what a reader sees ("Trojan Source", CVE-2021-42574) become `\x1b`-style text,
//!   so nothing reaches a terminal or a file that a terminal would interpret;
//! - [`md_code`]: a Markdown code span that no backtick in the text can close
//!   (CommonMark: a span opened by N backticks closes only at a run of exactly N);
//! - [`md_text`]: Markdown text where no character starts markup: ASCII punctuation that
//!   CommonMark or GFM gives a meaning to is backslash-escaped, line breaks are gone;
//! - [`md_code_cell`]: a code span inside a GFM table row (pipes escaped);
//! - [`csv_text`]: a CSV text cell neutralised as OWASP's CSV-injection guidance says: a cell
//!   starting with `=`, `+`, `-`, `@`, tab or carriage return is prefixed with `'`, so a
//!   spreadsheet shows it as text instead of evaluating a formula.

/// `text` with every character a terminal or a viewer would act on written out as visible
/// text: `\n`, `\t`, `\r`, `\x1b`, `\u{202e}`. Printable text, including any other Unicode
/// letter, is unchanged, and a backslash stays a backslash (the escapes are for reading, not
/// for decoding back).
pub fn visible(text: &str) -> String {
    if !text.chars().any(needs_escape) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 && needs_escape(c) => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        // Bidirectional embeddings, overrides and isolates; line and paragraph separators.
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// A Markdown code span showing `text` literally: fenced by one backtick more than the
/// longest run of backticks inside it, padded with a space when it starts or ends with a
/// backtick (CommonMark strips one space on each side).
pub fn md_code(text: &str) -> String {
    let text = visible(text);
    if text.is_empty() {
        return "` `".into();
    }
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// Markdown text showing `text` as it is: the ASCII punctuation that opens markup (emphasis,
/// links, images, code, raw HTML, tables, strikethrough, headings, lists) escaped with a
/// backslash (CommonMark allows a backslash before any ASCII punctuation), `&` as `&amp;`
/// (no entity reference survives), control characters and line breaks made visible so no
/// name starts a new block.
pub fn md_text(text: &str) -> String {
    let text = visible(text);
    let mut out = String::with_capacity(text.len() + 8);
    for (i, c) in text.chars().enumerate() {
        match c {
            // `>` starts markup only as the first character (a block quote): an arrow like
            // `->` stays readable in the raw text.
            '>' if i > 0 => out.push(c),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        }
    }
    out
}

/// A code span for a GFM table cell: GFM splits rows at `|` before it reads code spans, so
/// pipes are escaped even inside the span.
pub fn md_code_cell(text: &str) -> String {
    md_code(text).replace('|', "\\|")
}

/// One CSV text cell before RFC 4180 quoting: control characters visible, and a leading
/// formula character neutralised with a `'` (OWASP, "CSV Injection").
pub fn csv_text(text: &str) -> String {
    let text = visible(text);
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text,
    }
}

/// Cuts `text` to at most `width` characters, marking the cut with `…`.
pub fn truncate(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(width - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_text() {
        assert_eq!(visible("web"), "web");
        assert_eq!(visible("a\x1b]0;pwned\x07b"), "a\\x1b]0;pwned\\x07b");
        assert_eq!(visible("two\nlines\r\t"), "two\\nlines\\r\\t");
        assert_eq!(visible("\u{9b}2J"), "\\x9b2J");
        assert_eq!(visible("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(visible("zürich-ß"), "zürich-ß");
    }

    #[test]
    fn no_backtick_closes_a_code_span() {
        assert_eq!(md_code("web"), "`web`");
        assert_eq!(md_code("a`b"), "``a`b``");
        assert_eq!(md_code("`x``"), "``` `x`` ```");
        assert_eq!(md_code(""), "` `");
        assert_eq!(md_code("x\n# heading"), "`x\\n# heading`");
        assert_eq!(md_code_cell("a|b"), "`a\\|b`");
    }

    #[test]
    fn markdown_text_starts_no_markup() {
        assert_eq!(md_text("plain text, 15 %"), "plain text, 15 %");
        assert_eq!(
            md_text("<img src=x onerror=alert(1)>"),
            "\\<img src=x onerror=alert(1)>"
        );
        assert_eq!(md_text("> quote -> arrow"), "\\> quote -> arrow");
        assert_eq!(md_text("[x](http://e)"), "\\[x\\](http://e)");
        // The visible `\n` keeps its backslash when rendered.
        assert_eq!(md_text("a\n# b"), "a\\\\n\\# b");
        assert_eq!(md_text("&lt;"), "&amp;lt;");
    }

    #[test]
    fn csv_formulas_are_neutralised_as_owasp_says() {
        for bad in ["=cmd|' /C calc'!A0", "+1", "-1+2", "@SUM(A1)"] {
            assert_eq!(csv_text(bad), format!("'{bad}"));
        }
        assert_eq!(csv_text("\tx"), "\\tx");
        assert_eq!(csv_text("web"), "web");
    }

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
