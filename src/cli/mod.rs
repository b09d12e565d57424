//! The command lines of `sluice` and `sluicectl`, each defined once with clap: the binaries
//! parse them, and the same definitions give `--help`, the man pages and the shell completions
//! (`sluice generate-docs`, used by scripts/package). Parsing only: what a command does lives in
//! `appliance` (sluice) and `ctrlplane::api` (sluicectl).

pub mod ctl;
pub mod docs;
pub mod run;

/// `--version` of both commands: "0.1.0 (commit abcdef123456)".
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("SLUICE_COMMIT"), ")");
