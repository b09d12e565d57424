//! `sluice-gen`: Sluice's benchmark traffic generator (all clients and all backends in one
//! DPDK process). Its command line and output are documented in `src/gen/mod.rs`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    ExitCode::from(sluice::gen::main(&args) as u8)
}
