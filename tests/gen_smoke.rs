//! A seconds-long smoke run of the benchmark generator against the real `sluice` binary over
//! memif (the benchmark path of scripts/bench, scaled down): every datagram the generator sends
//! to the VIP comes back from the VIP through Sluice's FULLNAT with nothing bad and little lost.
//! Throughput is a benchmark's business, not this test's.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

#[test]
fn the_generator_drives_sluice_over_memif() {
    let net = TestNet::up("slg", 1);
    let dir = std::env::temp_dir().join("sluice-test-slg");
    std::fs::create_dir_all(&dir).unwrap();
    let sock = |n: u8| format!("{}/m{n}.sock", dir.display());
    let vdev = |n: u8, role: &str| format!("net_memif{n},role={role},socket={},socket-abstract=no", sock(n));
    let _ = std::fs::remove_file(sock(0));
    let _ = std::fs::remove_file(sock(1));
    let config = format!(
        r#"
[dpdk]
args = ["--no-pci", "--vdev={}", "--vdev={}"]
hugepages = false
mbufs = 8191
[cpu]
control = 0
workers = [1]
idle = "adaptive"
[sessions]
capacity = 65536
[[interface]]
name = "wan"
device = "net_memif0"
addresses = ["198.18.0.1/24"]
[[interface]]
name = "lan"
device = "net_memif1"
addresses = ["198.18.1.1/24"]
[[service]]
name = "udp"
vip = "198.18.0.10:53"
protocol = "udp"
local_ips = ["198.18.1.100"]
[[service.backend]]
address = "198.18.1.2:53"
[[service.backend]]
address = "198.18.1.3:53"
"#,
        vdev(0, "server"),
        vdev(1, "server")
    );
    let sluice = Sluice::start(&net, &config);
    let out = Command::new(generator())
        .args(["--mode", "fullnat", "--client-vdev", &vdev(0, "client"), "--backend-vdev", &vdev(1, "client")])
        .args(["--rate", "50000", "--duration", "2", "--flows", "64", "--cores", "1", "--cpus", "0", "--no-huge"])
        .output()
        .expect("run sluice-gen");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sluice-gen failed: {stderr}\n{}", sluice.log_text());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    let (sent, received, bad) =
        (report["sent"].as_u64().unwrap(), report["received"].as_u64().unwrap(), report["bad"].as_u64().unwrap());
    assert!(sent >= 50_000, "about 2 s at 50k pps: {report}");
    assert_eq!(bad, 0, "every reply from VIP:53 to its own flow: {report}");
    assert!(received * 100 >= sent * 99, "at most 1 % lost at a modest rate: {report}");
    let status = sluice.ctl_json(&["services"]);
    let forwarded: u64 =
        status[0]["backends"].as_array().unwrap().iter().map(|b| b["packets_to_backend"].as_u64().unwrap()).sum();
    assert!(forwarded >= received, "Sluice counted what it forwarded ({forwarded}) >= replies ({received})");
}

/// `sluice-gen` is a workspace crate of its own (tools/sluice-gen): its binary sits beside
/// `sluice`'s once the workspace is built, as scripts/test does.
fn generator() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_sluice")).with_file_name("sluice-gen");
    assert!(path.exists(), "{} is missing: build the workspace first (cargo build --workspace)", path.display());
    path
}
