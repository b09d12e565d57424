//! `sluice import-keepalived FILE` as an operator runs it: the config on stdout, what was not
//! carried over on stderr as FILE:LINE: lines, exit 1 when anything was not, 2 when the file
//! cannot be read; once the marked placeholders are filled in, `sluice --check-config` accepts
//! the output. (The conversion itself is tested over a corpus in `ctrlplane::import`.)

mod common;

use std::process::Command;

use common::*;

#[test]
fn an_imported_config_passes_check_config_once_filled_in() {
    // A seed's configuration, and the worked example of docs/migrating-from-lvs.md.
    for source in ["ctrlplane/src/import/corpus/udp-ops.conf", "conf/keepalived-example.conf"] {
        imported_and_filled_in(repo().join(source).to_str().unwrap());
    }
}

fn imported_and_filled_in(source: &str) {
    let out = Command::new(sluice_bin()).args(["import-keepalived", source]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "something was not carried over: {stderr}");
    assert!(!stderr.is_empty() && stderr.lines().all(|l| l.starts_with(&format!("{source}:"))), "{stderr}");
    assert!(stdout.contains("per_packet = true"), "the seeds' --ops: {stdout}");

    // As written it is refused: every placeholder must be filled in first.
    let unfilled = write_temp("sluice-imported-unfilled.toml", &stdout);
    let check = Command::new(sluice_bin()).arg("--check-config").arg(&unfilled).output().unwrap();
    assert_eq!(check.status.code(), Some(2), "placeholders refused");

    let mut interfaces = ["wan", "lan"].into_iter();
    let mut devices = ["net_null0", "net_null1"].into_iter();
    let mut addresses = ["198.18.0.1/24", "198.18.1.1/24"].into_iter();
    let filled: String = stdout
        .lines()
        .map(|line| {
            if line.starts_with("name = \"FILL IN") {
                format!("name = \"{}\"", interfaces.next().unwrap())
            } else if line.starts_with("device = \"\"") {
                format!("device = \"{}\"", devices.next().unwrap())
            } else if line.starts_with("addresses = [\"FILL IN") {
                format!("addresses = [\"{}\"]", addresses.next().unwrap())
            } else if line.starts_with("local_ips = [\"FILL IN") {
                "local_ips = [\"198.18.1.100\"]".to_owned()
            } else {
                line.to_owned()
            }
        })
        .map(|line| line + "\n")
        .collect();
    assert!(!filled.contains("\"FILL IN"), "{filled}");
    let path = write_temp("sluice-imported.toml", &filled);
    let check = Command::new(sluice_bin()).arg("--check-config").arg(&path).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{}\n{filled}", String::from_utf8_lossy(&check.stderr));
}

#[test]
fn a_missing_file_is_exit_2() {
    let out = Command::new(sluice_bin()).args(["import-keepalived", "/nonexistent/keepalived.conf"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/keepalived.conf"));
}
