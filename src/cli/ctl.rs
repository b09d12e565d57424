//! `sluicectl`: the command line, and the API request it stands for.

use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ctrlplane::api::{BackendAction, Request, MAX_WEIGHT};

pub const DEFAULT_SOCKET: &str = "/run/sluice/sluice.sock";

/// Ask a running Sluice, over its API socket, and print the reply as tables or JSON.
///
/// Exit codes: 0 done, 1 the appliance cannot be reached or refused, 2 a usage error.
#[derive(Parser, Debug)]
#[command(name = "sluicectl", version = super::VERSION, max_term_width = 100)]
pub struct Cli {
    /// The API socket
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET, global = true)]
    pub socket: PathBuf,
    /// Print the reply as one JSON document
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for the reply
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = seconds, global = true, allow_hyphen_values = true)]
    pub timeout: Duration,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug, PartialEq)]
pub enum Command {
    /// Version, uptime, workers, ports, sessions
    Status,
    /// Every service and its backends, with counters and rates (as ipvsadm -Ln --stats --rate)
    Services,
    /// Change one backend of a service
    Backend {
        /// The service's name
        service: String,
        /// The backend, IPv4:PORT
        #[arg(value_parser = address)]
        address: SocketAddrV4,
        #[command(subcommand)]
        action: Action,
    },
    /// The session table
    Sessions {
        /// Only this service's sessions
        service: Option<String>,
        /// At most this many rows
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
    },
    /// Re-read the config file (as SIGHUP does)
    Reload,
    /// Withdraw this node's VIPs from BGP; forwarding goes on
    DrainNode,
    /// Announce them again
    UndrainNode,
    /// Print a shell completion script for sluicectl (bash, zsh, fish, elvish, powershell)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand, Debug, PartialEq, Clone, Copy)]
pub enum Action {
    /// Set the weight: 0 (no new sessions) to 65535
    Weight {
        #[arg(value_parser = clap::value_parser!(u32).range(0..=MAX_WEIGHT as i64))]
        weight: u32,
    },
    /// No new sessions for the backend; its sessions go on
    Drain,
    /// Back in service after drain
    Enable,
}

impl Command {
    /// The API request this command stands for (`None`: answered without the appliance).
    pub fn request(&self) -> Option<Request> {
        Some(match self {
            Command::Status => Request::Status,
            Command::Services => Request::Services,
            Command::Backend { service, address, action } => Request::Backend {
                service: service.clone(),
                address: *address,
                action: match *action {
                    Action::Weight { weight } => BackendAction::Weight(weight),
                    Action::Drain => BackendAction::Drain,
                    Action::Enable => BackendAction::Enable,
                },
            },
            Command::Sessions { service, limit } => {
                Request::Sessions { service: service.clone(), limit: limit.map(|n| n as usize) }
            }
            Command::Reload => Request::Reload,
            Command::DrainNode => Request::DrainNode,
            Command::UndrainNode => Request::UndrainNode,
            Command::Completions { .. } => return None,
        })
    }
}

fn seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|t| !t.is_zero())
        .ok_or_else(|| "expected a positive number of seconds".into())
}

fn address(text: &str) -> Result<SocketAddrV4, String> {
    text.parse().map_err(|_| "expected IPv4:PORT".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("sluicectl").chain(line.split_whitespace()))
    }

    fn request(line: &str) -> (PathBuf, bool, Request) {
        let cli = parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        (cli.socket, cli.json, cli.command.request().unwrap())
    }

    fn error(line: &str) -> String {
        let e = parse(line).expect_err(line);
        assert_eq!(e.exit_code(), 2, "{line}");
        e.to_string()
    }

    #[test]
    fn commands_and_options() {
        let default = PathBuf::from(DEFAULT_SOCKET);
        assert_eq!(request("status"), (default.clone(), false, Request::Status));
        assert_eq!(request("--socket /tmp/s.sock --json services"), ("/tmp/s.sock".into(), true, Request::Services));
        assert_eq!(request("reload --socket=/x --json"), ("/x".into(), true, Request::Reload));
        assert_eq!(
            request("sessions dns --limit 5").2,
            Request::Sessions { service: Some("dns".into()), limit: Some(5) }
        );
        assert_eq!(request("sessions").2, Request::Sessions { service: None, limit: None });
        let backend =
            |action| Request::Backend { service: "dns".into(), address: "198.18.1.2:53".parse().unwrap(), action };
        assert_eq!(request("backend dns 198.18.1.2:53 weight 5").2, backend(BackendAction::Weight(5)));
        assert_eq!(request("backend dns 198.18.1.2:53 drain").2, backend(BackendAction::Drain));
        assert_eq!(request("backend dns 198.18.1.2:53 enable").2, backend(BackendAction::Enable));
        assert_eq!(request("drain-node").2, Request::DrainNode);
        assert_eq!(request("undrain-node --json"), (default, true, Request::UndrainNode));
        assert_eq!(parse("--timeout 0.5 status").unwrap().timeout, Duration::from_millis(500));
        assert_eq!(parse("--help").unwrap_err().exit_code(), 0);
        assert!(parse("completions bash").unwrap().command.request().is_none());
    }

    #[test]
    fn usage_errors() {
        assert!(error("").contains("Usage: sluicectl"));
        assert!(error("stop").contains("unrecognized subcommand 'stop'"));
        assert!(error("status now").contains("unexpected argument 'now'"));
        assert!(error("drain-node now").contains("unexpected argument 'now'"));
        assert!(error("--verbose status").contains("unexpected argument '--verbose'"));
        assert!(error("status --socket").contains("a value is required for '--socket <PATH>'"));
        assert!(error("status --limit 3").contains("unexpected argument '--limit'"));
        assert!(error("sessions --limit 0").contains("0 is not in 1.."));
        assert!(error("sessions --limit x").contains("invalid value 'x' for '--limit <N>'"));
        assert!(error("backend dns 198.18.1.2 drain").contains("expected IPv4:PORT"));
        assert!(error("backend dns 198.18.1.2:53 weight 70000").contains("70000 is not in 0..=65535"));
        assert!(error("backend dns 198.18.1.2:53 weight").contains("<WEIGHT>"));
        assert!(error("backend dns").contains("<ADDRESS>"));
        assert!(error("--timeout -1 status").contains("expected a positive number of seconds"));
    }
}
