//! The HTML orch writes into Plane comments. Comments may quote agent
//! output or error text, so everything is escaped; the only markup is the
//! paragraph and line breaks orch adds itself.

/// Escapes the five characters that carry meaning in HTML text and
/// attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A plain-text comment as `comment_html`: one paragraph, escaped, with
/// its line breaks kept.
pub fn comment_html(text: &str) -> String {
    let lines: Vec<String> = text.trim_end().lines().map(escape).collect();
    format!("<p>{}</p>", lines.join("<br>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_keeps_lines() {
        assert_eq!(
            comment_html("a <b> & \"c\" 'd'\nnext"),
            "<p>a &lt;b&gt; &amp; &quot;c&quot; &#39;d&#39;<br>next</p>"
        );
        assert_eq!(comment_html("<script>"), "<p>&lt;script&gt;</p>");
        assert_eq!(escape("&amp;"), "&amp;amp;");
    }
}
