//! What the importer tells the operator: one `Diagnostic` per keepalived construct that was
//! carried over differently or not at all, each with the line it was written on.
//!
//! `Report` collects them while the file is read and converted; `finish` puts them in file
//! order and folds a message repeated word for word (the same `digest` in ten real servers)
//! into one diagnostic that lists the other lines, so that stderr stays readable without
//! dropping any place.

use std::collections::HashMap;
use std::fmt;

/// How much a diagnostic matters; ordered from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Carried over in another form that keeps its meaning, or worth knowing while filling in.
    Note,
    /// Not carried over, or carried over with another behaviour: the Sluice config does
    /// something else there than keepalived did.
    Warning,
    /// A part of the file that could not be read, or a whole `virtual_server` left out.
    Error,
}

/// One construct of the keepalived file and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The keepalived file, as the caller named it.
    pub file: String,
    /// 1-based line of the construct.
    pub line: usize,
    /// Further lines where the same message applies, in file order (often empty).
    pub also_at: Vec<usize>,
    pub severity: Severity,
    /// What and why, one line.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// `FILE:LINE: what and why`, with `(also lines A, B)` when the message repeats.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)?;
        if !self.also_at.is_empty() {
            let lines: Vec<String> = self.also_at.iter().map(usize::to_string).collect();
            let word = if lines.len() == 1 { "line" } else { "lines" };
            write!(f, " (also {word} {})", lines.join(", "))?;
        }
        Ok(())
    }
}

/// Collects the diagnostics of one file.
pub struct Report {
    file: String,
    found: Vec<Diagnostic>,
}

impl Report {
    pub fn new(file: &str) -> Self {
        Report { file: file.to_owned(), found: Vec::new() }
    }

    pub fn note(&mut self, line: usize, message: impl Into<String>) {
        self.push(line, Severity::Note, message.into());
    }

    pub fn warning(&mut self, line: usize, message: impl Into<String>) {
        self.push(line, Severity::Warning, message.into());
    }

    pub fn error(&mut self, line: usize, message: impl Into<String>) {
        self.push(line, Severity::Error, message.into());
    }

    fn push(&mut self, line: usize, severity: Severity, message: String) {
        self.found.push(Diagnostic { file: self.file.clone(), line, also_at: Vec::new(), severity, message });
    }

    /// The diagnostics in file order, each message once with every line it applies to.
    pub fn finish(mut self) -> Vec<Diagnostic> {
        self.found.sort_by_key(|d| d.line);
        let mut out: Vec<Diagnostic> = Vec::with_capacity(self.found.len());
        let mut seen: HashMap<(Severity, String), usize> = HashMap::new();
        for diagnostic in self.found {
            match seen.get(&(diagnostic.severity, diagnostic.message.clone())) {
                Some(&index) => {
                    let first = &mut out[index];
                    if first.line != diagnostic.line && first.also_at.last() != Some(&diagnostic.line) {
                        first.also_at.push(diagnostic.line);
                    }
                }
                None => {
                    seen.insert((diagnostic.severity, diagnostic.message.clone()), out.len());
                    out.push(diagnostic);
                }
            }
        }
        out
    }
}
