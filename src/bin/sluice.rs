//! `sluice --config FILE` runs the appliance; `sluice --check-config FILE` validates a config;
//! `sluice import-keepalived FILE` converts a keepalived.conf. The command line is defined in
//! `sluice::cli::run`.

use std::process::ExitCode;

use clap::Parser;
use sluice::appliance::{self, EXIT_FAILED, EXIT_OK};
use sluice::cli::docs;
use sluice::cli::run::{Cli, Command};
use sluice::logging;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_level, cli.log_format);
    let code = match (&cli.command, &cli.config, &cli.check_config) {
        (Some(Command::ImportKeepalived { file }), _, _) => appliance::import_keepalived(file),
        (Some(Command::GenerateDocs { dir }), _, _) => match docs::generate(dir) {
            Ok(written) => {
                written.iter().for_each(|p| println!("{}", p.display()));
                EXIT_OK
            }
            Err(e) => {
                eprintln!("sluice: {}: {e}", dir.display());
                EXIT_FAILED
            }
        },
        (None, Some(file), None) => appliance::run(file),
        (None, None, Some(file)) => appliance::check_config(file),
        _ => unreachable!("clap requires exactly one of --config, --check-config and a command"),
    };
    ExitCode::from(code as u8)
}
