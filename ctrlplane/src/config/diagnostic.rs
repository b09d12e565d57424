//! Problems found in a config file, each with the place it was found.
//!
//! `Report` collects them while the file is checked: callers hand it byte offsets into
//! the text (from `toml::Spanned`) and it turns them into 1-based line and column,
//! the column counted in characters, as editors count it.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The file is refused.
    Error,
    /// The file is accepted; the problem is worth a look.
    Warning,
}

/// One problem at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub col: usize,
    pub message: String,
    pub severity: Severity,
}

impl fmt::Display for Diagnostic {
    /// `FILE:LINE:COL: message`, or `FILE:LINE:COL: warning: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.col)?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Error)
    }
}

impl fmt::Display for Diagnostics {
    /// One diagnostic a line, lines separated (not ended) by a newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Turns byte offsets into line and column.
struct LineIndex {
    /// The byte offset at which each line starts.
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let breaks = text.match_indices('\n').map(|(at, _)| at + 1);
        LineIndex { starts: std::iter::once(0).chain(breaks).collect() }
    }

    /// 1-based line and character column of a byte offset.
    fn position(&self, text: &str, at: usize) -> (usize, usize) {
        let mut at = at.min(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let line = self.starts.partition_point(|&start| start <= at);
        let start = self.starts[line - 1];
        (line, text[start..at].chars().count() + 1)
    }
}

/// Collects the diagnostics of one file while it is checked.
pub struct Report<'a> {
    file: &'a str,
    text: &'a str,
    lines: LineIndex,
    found: Vec<Diagnostic>,
}

impl<'a> Report<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Report { file, text, lines: LineIndex::new(text), found: Vec::new() }
    }

    /// An error at byte offset `at`.
    pub fn error(&mut self, at: usize, message: impl Into<String>) {
        self.push(at, message.into(), Severity::Error);
    }

    /// A warning at byte offset `at`.
    pub fn warning(&mut self, at: usize, message: impl Into<String>) {
        self.push(at, message.into(), Severity::Warning);
    }

    /// Line and column of byte offset `at`, for messages that point back to another place.
    pub fn position_of(&self, at: usize) -> (usize, usize) {
        self.lines.position(self.text, at)
    }

    /// An error that ends the checking: it comes alone, with nothing found before it.
    pub fn fatal(mut self, at: usize, message: impl Into<String>) -> Diagnostics {
        self.found.clear();
        self.error(at, message);
        Diagnostics(self.found)
    }

    /// The diagnostics in file order: `Ok` with the warnings when there is no error.
    pub fn finish(mut self) -> Result<Vec<Diagnostic>, Diagnostics> {
        // Stable: problems found at one place keep the order they were found in.
        self.found.sort_by_key(|d| (d.line, d.col));
        if self.found.iter().any(|d| d.severity == Severity::Error) {
            Err(Diagnostics(self.found))
        } else {
            Ok(self.found)
        }
    }

    fn push(&mut self, at: usize, message: String, severity: Severity) {
        let (line, col) = self.lines.position(self.text, at);
        let file = self.file.to_owned();
        self.found.push(Diagnostic { file, line, col, message, severity });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "a = 1\n# é ü\nb = 2";
        let lines = LineIndex::new(text);
        assert_eq!(lines.position(text, 0), (1, 1));
        assert_eq!(lines.position(text, 4), (1, 5));
        assert_eq!(lines.position(text, 6), (2, 1));
        let b = text.find('b').unwrap_or_default();
        assert_eq!(lines.position(text, b), (3, 1));
        let u = text.find('ü').unwrap_or_default();
        assert_eq!(lines.position(text, u), (2, 5));
        // Past the end, and inside a character, clamp to a real place.
        assert_eq!(lines.position(text, 999), (3, 6));
        assert_eq!(lines.position(text, u + 1), (2, 5));
    }

    #[test]
    fn renders_one_line_each_sorted_by_place() {
        let mut report = Report::new("sluice.toml", "x = 1\ny = 2\n");
        report.error(6, "second");
        report.warning(0, "first");
        let Err(diagnostics) = report.finish() else { panic!("an error was reported") };
        assert_eq!(diagnostics.to_string(), "sluice.toml:1:1: warning: first\nsluice.toml:2:1: second");
        assert_eq!(diagnostics.errors().count(), 1);
    }

    #[test]
    fn warnings_alone_pass() {
        let mut report = Report::new("f", "x");
        report.warning(0, "careful");
        let warnings = report.finish().expect("warnings do not refuse a file");
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].severity, Severity::Warning);
    }
}
