//! `sluicectl [--socket PATH] [--json] COMMAND`: talks to the running appliance over its API
//! socket (`ctrlplane::api`) and prints the reply as tables, or with `--json` as one JSON
//! document. Exit 0 on success, 1 when the daemon cannot be reached or refuses, 2 on a usage
//! error. The command line is defined in `sluice::cli::ctl`.

use std::io::{ErrorKind, Write};
use std::process::ExitCode;

use clap::Parser;
use ctrlplane::api::{self, format};
use sluice::cli::ctl::{Cli, Command};
use sluice::cli::docs;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        return print(&String::from_utf8_lossy(&docs::completion(shell)));
    }
    let request = cli.command.request().expect("every command but completions is a request");
    let text = api::call(&cli.socket, &request, cli.timeout).and_then(|data| format::render(&request, &data, cli.json));
    match text {
        Ok(text) => print(&text),
        Err(message) => {
            eprintln!("sluicectl: {message}");
            ExitCode::from(1)
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
