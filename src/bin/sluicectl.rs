//! `sluicectl [--socket PATH] [--json] COMMAND`: talks to the running appliance over its API
//! socket (`ctrlplane::api`) and prints the reply as tables, or with `--json` as one JSON
//! document. Exit 0 on success, 1 when the daemon cannot be reached or refuses, 2 on a usage
//! error.

use std::io::{ErrorKind, Write};
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ctrlplane::api::{self, format, BackendAction, Request, MAX_WEIGHT};

const DEFAULT_SOCKET: &str = "/run/sluice/sluice.sock";
const DEFAULT_TIMEOUT_SECONDS: u64 = 10;

const USAGE: &str = "\
usage: sluicectl [--socket PATH] [--json] [--timeout SECONDS] COMMAND

commands:
  status                                   version, uptime, workers, ports, sessions
  services                                 every service and its backends, with counters
  backend SERVICE ADDRESS weight N         set a backend's weight (0..=65535)
  backend SERVICE ADDRESS drain            no new sessions for the backend
  backend SERVICE ADDRESS enable           back in service after drain
  sessions [SERVICE] [--limit N]           the session table
  reload                                   re-read the config file (as SIGHUP)
  drain-node                               withdraw this node's VIPs from BGP; forwarding goes on
  undrain-node                             announce them again

options:
  --socket PATH      the API socket (default /run/sluice/sluice.sock)
  --json             print the reply as one JSON document
  --timeout SECONDS  how long to wait for the reply (default 10)";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
enum Invocation {
    Help,
    Version,
    Call { socket: PathBuf, json: bool, timeout: Duration, request: Request },
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args) {
        Ok(Invocation::Help) => print(&format!("{USAGE}\n")),
        Ok(Invocation::Version) => print(&format!("sluicectl {}\n", sluice::version())),
        Ok(Invocation::Call { socket, json, timeout, request }) => {
            let text = api::call(&socket, &request, timeout).and_then(|data| format::render(&request, &data, json));
            match text {
                Ok(text) => print(&text),
                Err(message) => {
                    eprintln!("sluicectl: {message}");
                    ExitCode::from(1)
                }
            }
        }
        Err(message) => {
            eprintln!("sluicectl: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn print(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluicectl: cannot write the output: {e}");
            ExitCode::from(1)
        }
    }
}

/// Options may stand anywhere on the line; the words left are the command.
fn parse_args(args: &[String]) -> Result<Invocation, String> {
    let mut socket = PathBuf::from(DEFAULT_SOCKET);
    let mut json = false;
    let mut timeout = Duration::from_secs(DEFAULT_TIMEOUT_SECONDS);
    let mut limit = None;
    let mut words = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value =
            |what: &str| inline.clone().or_else(|| args.next().cloned()).ok_or_else(|| format!("{name} needs {what}"));
        match name {
            "-h" | "--help" => return Ok(Invocation::Help),
            "-V" | "--version" => return Ok(Invocation::Version),
            "--json" => json = true,
            "--socket" => socket = PathBuf::from(value("a path")?),
            "--timeout" => {
                let text = value("a number of seconds")?;
                let seconds: f64 = text.parse().map_err(|_| format!("bad --timeout `{text}`: expected seconds"))?;
                timeout = Duration::try_from_secs_f64(seconds)
                    .ok()
                    .filter(|t| !t.is_zero())
                    .ok_or_else(|| format!("bad --timeout `{text}`: expected a positive number of seconds"))?;
            }
            "--limit" => {
                let text = value("a number")?;
                let n: usize = text.parse().map_err(|_| format!("bad --limit `{text}`: expected a number"))?;
                if n == 0 {
                    return Err("--limit must be at least 1".into());
                }
                limit = Some(n);
            }
            _ if name.starts_with('-') && name.len() > 1 => return Err(format!("unknown option `{arg}`")),
            _ => words.push(arg.as_str()),
        }
    }
    let request = command(&words)?;
    if limit.is_some() && !matches!(request, Request::Sessions { .. }) {
        return Err("--limit goes only with `sessions`".into());
    }
    let request = match request {
        Request::Sessions { service, .. } => Request::Sessions { service, limit },
        other => other,
    };
    Ok(Invocation::Call { socket, json, timeout, request })
}

fn command(words: &[&str]) -> Result<Request, String> {
    match words {
        [] => Err("no command given".into()),
        ["status"] => Ok(Request::Status),
        ["services"] => Ok(Request::Services),
        ["reload"] => Ok(Request::Reload),
        ["drain-node"] => Ok(Request::DrainNode),
        ["undrain-node"] => Ok(Request::UndrainNode),
        ["sessions"] => Ok(Request::Sessions { service: None, limit: None }),
        ["sessions", service] => Ok(Request::Sessions { service: Some(service.to_string()), limit: None }),
        ["backend", service, address, action @ ..] => {
            let address: SocketAddrV4 =
                address.parse().map_err(|_| format!("bad address `{address}`: expected IPv4:PORT"))?;
            let action = match action {
                ["weight", n] => match n.parse::<u32>() {
                    Ok(w) if w <= MAX_WEIGHT => BackendAction::Weight(w),
                    _ => return Err(format!("bad weight `{n}`: expected 0..={MAX_WEIGHT}")),
                },
                ["drain"] => BackendAction::Drain,
                ["enable"] => BackendAction::Enable,
                _ => return Err("backend needs SERVICE ADDRESS and weight N, drain or enable".into()),
            };
            Ok(Request::Backend { service: service.to_string(), address, action })
        }
        ["backend", ..] => Err("backend needs SERVICE ADDRESS and weight N, drain or enable".into()),
        [cmd, ..] if ["status", "services", "reload", "sessions", "drain-node", "undrain-node"].contains(cmd) => {
            Err(format!("too many arguments for `{cmd}`"))
        }
        [cmd, ..] => Err(format!("unknown command `{cmd}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Invocation, String> {
        parse_args(&line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
    }

    fn call(socket: &str, json: bool, request: Request) -> Result<Invocation, String> {
        Ok(Invocation::Call { socket: socket.into(), json, timeout: Duration::from_secs(10), request })
    }

    #[test]
    fn commands_and_options() {
        assert_eq!(parse("status"), call(DEFAULT_SOCKET, false, Request::Status));
        assert_eq!(parse("--socket /tmp/s.sock --json services"), call("/tmp/s.sock", true, Request::Services));
        assert_eq!(parse("reload --socket=/x --json"), call("/x", true, Request::Reload));
        assert_eq!(
            parse("sessions dns --limit 5"),
            call(DEFAULT_SOCKET, false, Request::Sessions { service: Some("dns".into()), limit: Some(5) })
        );
        assert_eq!(parse("sessions"), call(DEFAULT_SOCKET, false, Request::Sessions { service: None, limit: None }));
        let backend =
            |action| Request::Backend { service: "dns".into(), address: "198.18.1.2:53".parse().unwrap(), action };
        assert_eq!(
            parse("backend dns 198.18.1.2:53 weight 5"),
            call(DEFAULT_SOCKET, false, backend(BackendAction::Weight(5)))
        );
        assert_eq!(
            parse("backend dns 198.18.1.2:53 drain"),
            call(DEFAULT_SOCKET, false, backend(BackendAction::Drain))
        );
        assert_eq!(
            parse("backend dns 198.18.1.2:53 enable"),
            call(DEFAULT_SOCKET, false, backend(BackendAction::Enable))
        );
        assert_eq!(parse("drain-node"), call(DEFAULT_SOCKET, false, Request::DrainNode));
        assert_eq!(parse("undrain-node --json"), call(DEFAULT_SOCKET, true, Request::UndrainNode));
        assert_eq!(parse("--help"), Ok(Invocation::Help));
        assert!(
            matches!(parse("--timeout 0.5 status"), Ok(Invocation::Call { timeout, .. }) if timeout == Duration::from_millis(500))
        );
    }

    #[test]
    fn usage_errors() {
        assert_eq!(parse(""), Err("no command given".into()));
        assert_eq!(parse("stop"), Err("unknown command `stop`".into()));
        assert_eq!(parse("status now"), Err("too many arguments for `status`".into()));
        assert_eq!(parse("drain-node now"), Err("too many arguments for `drain-node`".into()));
        assert_eq!(parse("--verbose status"), Err("unknown option `--verbose`".into()));
        assert_eq!(parse("status --socket"), Err("--socket needs a path".into()));
        assert_eq!(parse("status --limit 3"), Err("--limit goes only with `sessions`".into()));
        assert_eq!(parse("sessions --limit 0"), Err("--limit must be at least 1".into()));
        assert_eq!(parse("sessions --limit x"), Err("bad --limit `x`: expected a number".into()));
        assert_eq!(parse("backend dns 198.18.1.2 drain"), Err("bad address `198.18.1.2`: expected IPv4:PORT".into()));
        assert_eq!(
            parse("backend dns 198.18.1.2:53 weight 70000"),
            Err("bad weight `70000`: expected 0..=65535".into())
        );
        assert_eq!(
            parse("backend dns 198.18.1.2:53 weight"),
            Err("backend needs SERVICE ADDRESS and weight N, drain or enable".into())
        );
        assert_eq!(parse("backend dns"), Err("backend needs SERVICE ADDRESS and weight N, drain or enable".into()));
        assert_eq!(
            parse("--timeout -1 status"),
            Err("bad --timeout `-1`: expected a positive number of seconds".into())
        );
    }
}
