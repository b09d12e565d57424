//! `sluice import-keepalived`: a keepalived.conf's `virtual_server` blocks as a Sluice config.
//!
//! The file is read in three steps, each in its own module:
//! 1. `syntax`: keepalived's grammar (keywords, values, `{ }` blocks, comments, quotes) into
//!    a tree of statements, whatever they mean;
//! 2. `convert` (the top level), `virtual_server`, `real_server`, `checker`, `policy`: the
//!    tree into a `draft` of Sluice services, reporting every construct that is carried over
//!    in another form or not at all;
//! 3. `render`: the draft as TOML, with placeholders for what keepalived does not say
//!    (interfaces, local IPs) that `sluice --check-config` refuses until they are filled in.
//!
//! Nothing is dropped silently: each keyword or block that does not reach the TOML as it was
//! meant has a `Diagnostic`, `FILE:LINE: what and why`. `include` directives are reported, not
//! followed: the importer reads the one text it is given and touches nothing else.

mod checker;
mod convert;
mod diagnostic;
mod draft;
mod policy;
mod real_server;
mod render;
mod syntax;
mod values;
mod virtual_server;

#[cfg(test)]
mod corpus_tests;

pub use diagnostic::{Diagnostic, Severity};
pub use render::{BACKEND_SIDE_NAME, CLIENT_SIDE_NAME, DEVICE, INTERFACE_ADDRESS, LOCAL_IP};

/// A keepalived file as a Sluice config, and what became of each construct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The Sluice config, with placeholders to fill in.
    pub toml: String,
    /// In file order; print them one a line (their `Display` is `FILE:LINE: what and why`).
    pub diagnostics: Vec<Diagnostic>,
}

impl Imported {
    /// The most serious diagnostic's severity; `None` when there is none.
    pub fn worst(&self) -> Option<Severity> {
        self.diagnostics.iter().map(|d| d.severity).max()
    }

    /// True when everything was carried over: no diagnostic beyond notes. A command can exit
    /// 0 on this, and non-zero otherwise, so that scripts notice what needs a hand.
    pub fn carried_all(&self) -> bool {
        self.worst() <= Some(Severity::Note)
    }
}

/// Converts keepalived config `text`; `file_name` is how diagnostics and the header name it.
pub fn import_keepalived(file_name: &str, text: &str) -> Imported {
    let mut report = diagnostic::Report::new(file_name);
    let statements = syntax::parse(text, &mut report);
    let draft = convert::convert(&statements, &mut report);
    let diagnostics = report.finish();
    let toml = render::render(file_name, &draft, &diagnostics);
    Imported { toml, diagnostics }
}
