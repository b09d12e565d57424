//! `sluice`: run the appliance, check a config, or convert a keepalived.conf.

use std::path::PathBuf;

use clap::{ArgGroup, Parser, Subcommand};

/// Sluice, a FULLNAT layer-4 load balancer on DPDK.
///
/// Runs in the foreground until SIGTERM or SIGINT (a second one stops at once, without the BGP
/// drain); SIGHUP re-reads the config. Exit codes: 0 stopped cleanly, 1 failed at run time,
/// 2 invalid configuration or command line.
#[derive(Parser, Debug, PartialEq)]
#[command(name = "sluice", version = super::VERSION, arg_required_else_help = true, max_term_width = 100)]
#[command(group(ArgGroup::new("action").args(["config", "check_config"]).required(true)))]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Cli {
    /// Run the appliance with this config file
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Check a config file without touching any device: one FILE:LINE:COL: line per problem,
    /// exit 0 when valid, 2 when not
    #[arg(long, value_name = "FILE")]
    pub check_config: Option<PathBuf>,
    /// The least severe log lines written: error, warn, info, debug or trace
    #[arg(long, value_name = "LEVEL", env = "SLUICE_LOG", default_value = "info", global = true)]
    pub log_level: log::LevelFilter,
    /// Log lines as text (`sluice: LEVEL: message`) or as JSON objects with the events' fields
    #[arg(long, value_name = "FORMAT", env = "SLUICE_LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: crate::logging::Format,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug, PartialEq)]
pub enum Command {
    /// Print a Sluice config equivalent to the virtual_server blocks of a keepalived.conf;
    /// what cannot be carried over is reported on stderr as FILE:LINE: what and why
    ImportKeepalived {
        /// The keepalived.conf to read
        file: PathBuf,
    },
    /// Write the man pages of sluice and sluicectl and sluicectl's shell completions into DIR
    #[command(hide = true)]
    GenerateDocs { dir: PathBuf },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("sluice").chain(line.split_whitespace()))
    }

    #[test]
    fn the_documented_lines() {
        let c = parse("--config /etc/sluice/sluice.toml").unwrap();
        assert_eq!((c.config.unwrap(), c.check_config, c.command), ("/etc/sluice/sluice.toml".into(), None, None));
        let c = parse("--check-config a.toml").unwrap();
        assert_eq!(c.check_config, Some("a.toml".into()));
        let c = parse("import-keepalived /etc/keepalived/keepalived.conf").unwrap();
        assert_eq!(c.command, Some(Command::ImportKeepalived { file: "/etc/keepalived/keepalived.conf".into() }));
        assert_eq!(parse("--config a --log-level debug").unwrap().log_level, log::LevelFilter::Debug);
    }

    #[test]
    fn usage_errors_exit_2() {
        for line in [
            "",
            "--log-level debug",
            "--config",
            "--config a --check-config b",
            "--bogus",
            "--config a import-keepalived b",
        ] {
            let e = parse(line).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{line:?}: {e}");
        }
        assert_eq!(parse("--version").unwrap_err().exit_code(), 0);
    }
}
