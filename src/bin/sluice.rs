//! `sluice --config FILE` runs the appliance; `sluice --check-config FILE` validates a config.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: sluice --config FILE | --check-config FILE | --version";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["--config", file] => sluice::appliance::run(&PathBuf::from(file)),
        ["--check-config", file] => sluice::appliance::check_config(&PathBuf::from(file)),
        ["--version"] => {
            println!("sluice {}", sluice::version());
            0
        }
        ["--help"] | ["-h"] => {
            println!("{USAGE}");
            0
        }
        _ => {
            eprintln!("{USAGE}");
            sluice::appliance::EXIT_INVALID_CONFIG
        }
    };
    ExitCode::from(code as u8)
}
