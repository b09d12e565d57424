//! The importer over a corpus of keepalived files, `corpus/NAME.conf`, written from keepalived's
//! documented samples and from operators' configurations: each output is compared exactly with
//! `NAME.toml`, its diagnostics (one a line) with `NAME.diag`; then every output, its
//! placeholders filled in, must be accepted by Sluice's own config parser, and refused before.
//!
//! `SLUICE_BLESS=1 cargo test -p ctrlplane import` rewrites the expected files from what the
//! importer produces now: read the diff before committing it.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::{import_keepalived, Imported, Severity};
use super::{BACKEND_SIDE_NAME, CLIENT_SIDE_NAME, DEVICE, INTERFACE_ADDRESS, LOCAL_IP};
use crate::config::{self, Host, Ipv4Net};

const HOST: Host = Host { cpus: 2 };

/// The corpus files, by name.
fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/import/corpus");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    files
}

fn import(path: &Path) -> Imported {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path.file_name().and_then(|n| n.to_str()).expect("a UTF-8 file name");
    import_keepalived(name, &text)
}

fn rendered(imported: &Imported) -> String {
    imported.diagnostics.iter().map(|d| format!("{d}\n")).collect()
}

#[test]
fn corpus_outputs_are_the_expected_ones() {
    let bless = std::env::var_os("SLUICE_BLESS").is_some();
    let mut differ = Vec::new();
    for conf in corpus() {
        let imported = import(&conf);
        for (extension, produced) in [("toml", imported.toml.clone()), ("diag", rendered(&imported))] {
            let expected_path = conf.with_extension(extension);
            if bless {
                fs::write(&expected_path, &produced).expect("the expected file written");
                continue;
            }
            let expected = fs::read_to_string(&expected_path).unwrap_or_default();
            if expected != produced {
                differ.push(format!("{}:\n{produced}", expected_path.display()));
            }
        }
    }
    assert!(differ.is_empty(), "differ from the expected files (SLUICE_BLESS=1 rewrites them):\n{}", differ.join("\n"));
}

/// The output with its placeholders replaced: interfaces "wan" and "lan" on null devices,
/// local IP 198.18.1.100 for every service.
fn fill(toml: &str) -> String {
    let quoted = |text: &str| format!("\"{text}\"");
    toml.replacen(&quoted(CLIENT_SIDE_NAME), "\"wan\"", 1)
        .replacen(&quoted(BACKEND_SIDE_NAME), "\"lan\"", 1)
        .replacen(&format!("device = {}", quoted(DEVICE)), "device = \"net_null0\"", 1)
        .replacen(&format!("device = {}", quoted(DEVICE)), "device = \"net_null1\"", 1)
        .replacen(&quoted(INTERFACE_ADDRESS), "\"198.18.0.1/24\"", 1)
        .replacen(&quoted(INTERFACE_ADDRESS), "\"198.18.1.1/24\"", 1)
        .replace(&quoted(LOCAL_IP), "\"198.18.1.100\"")
}

#[test]
fn filled_in_outputs_pass_the_config_parser() {
    for conf in corpus() {
        let imported = import(&conf);
        let filled = fill(&imported.toml);
        let name = conf.with_extension("toml").display().to_string();
        match config::parse(&filled, &name, &HOST) {
            Ok(parsed) => {
                let warnings: Vec<String> = parsed.warnings.iter().map(ToString::to_string).collect();
                assert!(warnings.is_empty(), "{name}: warnings:\n{}", warnings.join("\n"));
                assert_eq!(parsed.services.len(), imported.toml.matches("\n[[service]]\n").count(), "{name}");
            }
            Err(diagnostics) => panic!("{name} refused once filled in:\n{diagnostics}\n\n{filled}"),
        }
    }
}

#[test]
fn unfilled_outputs_are_refused_for_each_placeholder() {
    for conf in corpus() {
        let imported = import(&conf);
        let name = conf.with_extension("toml").display().to_string();
        let Err(diagnostics) = config::parse(&imported.toml, &name, &HOST) else {
            panic!("{name} accepted with its placeholders");
        };
        let text = diagnostics.to_string();
        assert!(text.contains("invalid interface name \"FILL IN: client side\""), "{text}");
        assert!(text.contains("interface device is empty"), "{text}");
        assert!(text.contains("invalid interface address \"FILL IN: a.b.c.d/len\""), "{text}");
        if imported.toml.contains("[[service]]") {
            assert!(text.contains("invalid local IP \"FILL IN: local IP\""), "{text}");
        }
    }
}

#[test]
fn the_corpus_is_big_enough_and_stays_in_the_benchmark_range() {
    let files = corpus();
    assert!(files.len() >= 6, "{} corpus files", files.len());
    let range: Ipv4Net = "198.18.0.0/15".parse().expect("a network");
    for conf in files {
        let text = fs::read_to_string(&conf).expect("readable");
        let words = text.split(|c: char| !(c.is_ascii_digit() || c == '.'));
        // Netmasks (persistence_granularity) are not addresses.
        let is_mask = |a: &Ipv4Addr| u32::from(*a).leading_ones() + u32::from(*a).trailing_zeros() == 32;
        for address in words.filter_map(|w| w.parse::<Ipv4Addr>().ok()).filter(|a| !is_mask(a)) {
            assert!(range.contains(address), "{}: {address} is outside 198.18.0.0/15", conf.display());
        }
    }
}

#[test]
fn diagnostics_read_file_line_what_and_why() {
    let imported = import_keepalived(
        "ka.conf",
        "virtual_server 198.18.0.10 80 {\n  protocol TCP\n  lb_kind NAT\n  persistence_timeout 50\n  real_server 198.18.1.2 80 {\n  }\n}\n",
    );
    let first = imported.diagnostics.iter().find(|d| d.line == 4).expect("persistence_timeout reported");
    assert!(first.to_string().starts_with("ka.conf:4: persistence_timeout 50 not carried over: "), "{first}");
    assert_eq!(imported.worst(), Some(Severity::Warning));
    assert!(!imported.carried_all());
}

#[test]
fn a_plain_virtual_server_is_carried_over_whole() {
    let imported = import_keepalived(
        "ka.conf",
        "virtual_server 198.18.0.10 80 {\n  protocol TCP\n  lb_algo rr\n  delay_loop 5\n  real_server 198.18.1.2 80 {\n    inhibit_on_failure\n    TCP_CHECK {\n      connect_timeout 2\n      retry 2\n    }\n  }\n}\n",
    );
    // The one note: lb_kind NAT (keepalived's default) becomes FULLNAT.
    assert_eq!(imported.worst(), Some(Severity::Note), "{}", rendered(&imported));
    assert!(imported.carried_all());
    assert!(imported.toml.contains("check = \"tcp\"\ninterval = \"5s\"\ntimeout = \"2s\""), "{}", imported.toml);
    assert!(imported.toml.contains("fall = 3\n"), "{}", imported.toml);
    assert!(imported.toml.contains("on_failure = \"inhibit\"\n"), "{}", imported.toml);
}

#[test]
fn a_message_repeated_on_many_lines_is_one_diagnostic() {
    let real = |n: u8| {
        format!("  real_server 198.18.1.{n} 80 {{\n    HTTP_GET {{\n      url {{\n        path /\n        digest 0f\n        status_code 200\n      }}\n    }}\n  }}\n")
    };
    let text = format!("virtual_server 198.18.0.10 80 {{\n  protocol TCP\n  lb_kind NAT\n{}{}}}\n", real(2), real(3));
    let imported = import_keepalived("ka.conf", &text);
    let digests: Vec<String> =
        imported.diagnostics.iter().filter(|d| d.message.starts_with("digest")).map(ToString::to_string).collect();
    assert_eq!(
        digests,
        ["ka.conf:8: digest not checked: Sluice's http check compares the status code only (also line 17)"]
    );
}

#[test]
fn nothing_to_import_still_gives_a_config_to_fill_in() {
    let imported = import_keepalived("empty.conf", "");
    assert!(imported.diagnostics.is_empty());
    assert!(imported.carried_all());
    assert!(
        imported.toml.contains("0 virtual servers: 0 carried over as [[service]], 0 left out."),
        "{}",
        imported.toml
    );
    config::parse(&fill(&imported.toml), "empty.toml", &HOST).expect("accepted once filled in");
}
