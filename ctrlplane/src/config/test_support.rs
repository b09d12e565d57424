//! Helpers for the config tests: small TOML snippets checked as `t.toml` on a 2-CPU host.

use super::{parse, Config, Host};

pub const HOST: Host = Host { cpus: 2 };

/// Two interfaces, appended to a snippet that has none so that it can be valid. Being
/// appended, they leave the snippet's own line numbers as written.
const INTERFACES: &str = r#"
[[interface]]
name = "wan"
device = "net0"
addresses = ["198.18.0.1/24"]

[[interface]]
name = "lan"
device = "net1"
addresses = ["198.18.1.1/24"]
"#;

fn with_interfaces(snippet: &str) -> String {
    if snippet.contains("[[interface]]") {
        snippet.to_owned()
    } else {
        format!("{snippet}\n{INTERFACES}")
    }
}

/// The snippet's config; panics with the diagnostics when it is refused.
pub fn config(snippet: &str) -> Config {
    match parse(&with_interfaces(snippet), "t.toml", &HOST) {
        Ok(config) => config,
        Err(diagnostics) => panic!("refused:\n{diagnostics}"),
    }
}

/// `config` on another host.
pub fn config_on(snippet: &str, host: &Host) -> Config {
    match parse(&with_interfaces(snippet), "t.toml", host) {
        Ok(config) => config,
        Err(diagnostics) => panic!("refused:\n{diagnostics}"),
    }
}

/// The snippet's rendered diagnostics, one a line; panics when it is accepted.
pub fn errors(snippet: &str) -> String {
    errors_on(snippet, &HOST)
}

pub fn errors_on(snippet: &str, host: &Host) -> String {
    match parse(&with_interfaces(snippet), "t.toml", host) {
        Ok(config) => panic!("accepted: {config:#?}"),
        Err(diagnostics) => diagnostics.to_string(),
    }
}

/// The warnings of an accepted snippet, rendered one a line.
pub fn warnings(snippet: &str) -> String {
    let rendered: Vec<String> = config(snippet).warnings.iter().map(ToString::to_string).collect();
    rendered.join("\n")
}
