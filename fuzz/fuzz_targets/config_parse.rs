//! The config checker on arbitrary text: it never panics; a refusal names a place inside the
//! text for every problem (`FILE:LINE:COL: message`, one line each); and what it accepts runs:
//! every value within the limits the appliance starts with (mbuf pool, session capacity).

#![no_main]

use ctrlplane::config::{mbufs_needed, parse, Host, MAX_SESSIONS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let host = Host { cpus: 4 };
    match parse(text, "f.toml", &host) {
        Ok(config) => {
            assert!(config.sessions.capacity >= 1 && config.sessions.capacity <= MAX_SESSIONS);
            let needed = mbufs_needed(config.cpu.workers.len(), config.interfaces.len());
            assert!(u64::from(config.dpdk.mbufs) >= needed, "{} mbufs pass for {needed} needed", config.dpdk.mbufs);
            assert!(config.cpu.workers.iter().all(|&w| w < host.cpus) && config.cpu.control < host.cpus);
            assert!(!config.cpu.workers.is_empty());
            assert!(config.timeouts.all().iter().all(|d| !d.is_zero()));
        }
        Err(diagnostics) => {
            assert!(diagnostics.errors().count() > 0, "refused without an error");
            let lines = text.split('\n').count();
            for d in &diagnostics.0 {
                assert_eq!(d.file, "f.toml");
                assert!(d.line >= 1 && d.line <= lines.max(1), "line {} of {lines}", d.line);
                assert!(d.col >= 1, "col {}", d.col);
                assert!(!d.message.is_empty() && !d.message.contains('\n'), "{:?}", d.message);
            }
            let shown = diagnostics.to_string();
            assert_eq!(shown.lines().count(), diagnostics.0.len());
            assert!(shown.lines().all(|l| l.starts_with("f.toml:")));
        }
    }
});
