//! The XML bodies of nvhttp replies: `<root status_code="..">` with flat children,
//! written as Sunshine writes them (declaration, no indentation).

/// Escapes text for an XML element or attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters; drop them.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// `<name><child>value</child>...</name>` with every value escaped, for nested
/// elements such as `/applist`'s `<App>`.
pub fn element(name: &str, children: &[(&str, &dyn std::fmt::Display)]) -> String {
    let mut out = format!("<{name}>");
    for (child, value) in children {
        out.push_str(&format!(
            "<{child}>{}</{child}>",
            escape(&value.to_string())
        ));
    }
    out.push_str(&format!("</{name}>"));
    out
}

/// Builds one reply.
#[derive(Debug, Clone)]
pub struct XmlReply {
    status: u32,
    message: Option<String>,
    body: String,
}

impl XmlReply {
    /// A `status_code="200"` reply.
    pub fn ok() -> Self {
        Self::status(200, None)
    }

    /// A reply with `status_code` and an optional `status_message`.
    pub fn status(code: u32, message: Option<&str>) -> Self {
        Self {
            status: code,
            message: message.map(str::to_owned),
            body: String::new(),
        }
    }

    /// An error reply.
    pub fn error(code: u32, message: &str) -> Self {
        Self::status(code, Some(message))
    }

    /// The status code carried in the root element.
    pub fn status_code(&self) -> u32 {
        self.status
    }

    /// Appends `<name>value</name>` (value escaped).
    pub fn elem(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        self.push(name, value);
        self
    }

    /// Appends `<name>value</name>` in place.
    pub fn push(&mut self, name: &str, value: impl std::fmt::Display) {
        self.body.push('<');
        self.body.push_str(name);
        self.body.push('>');
        self.body.push_str(&escape(&value.to_string()));
        self.body.push_str("</");
        self.body.push_str(name);
        self.body.push('>');
    }

    /// Appends pre-built child markup (for nested elements such as `<App>`).
    pub fn raw(mut self, markup: &str) -> Self {
        self.body.push_str(markup);
        self
    }

    /// The full document.
    pub fn render(&self) -> String {
        let mut out =
            String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<root status_code=\"");
        out.push_str(&self.status.to_string());
        out.push('"');
        if let Some(m) = &self.message {
            out.push_str(" status_message=\"");
            out.push_str(&escape(m));
            out.push('"');
        }
        if self.body.is_empty() {
            out.push_str("/>");
        } else {
            out.push('>');
            out.push_str(&self.body);
            out.push_str("</root>");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_sunshine_and_escapes() {
        let r = XmlReply::ok()
            .elem("hostname", "a<b&\"c\"")
            .elem("PairStatus", 0);
        assert_eq!(
            r.render(),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<root status_code=\"200\"><hostname>a&lt;b&amp;&quot;c&quot;</hostname><PairStatus>0</PairStatus></root>"
        );
        assert_eq!(
            XmlReply::error(401, "not <paired>").render(),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<root status_code=\"401\" status_message=\"not &lt;paired&gt;\"/>"
        );
        assert_eq!(escape("a\u{1}b"), "ab");
        assert_eq!(
            element("App", &[("AppTitle", &"A&B"), ("ID", &7)]),
            "<App><AppTitle>A&amp;B</AppTitle><ID>7</ID></App>"
        );
    }
}
