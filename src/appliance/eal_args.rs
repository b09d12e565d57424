//! The EAL command line Sluice derives from `[cpu]` and `[dpdk]`.
//!
//! Lcore ids are decoupled from CPU ids: lcore 0 is the control thread on `cpu.control`, lcore
//! i+1 is worker i on `cpu.workers[i]`. So a worker may share the control CPU (two-core test
//! machines) without DPDK refusing a duplicate lcore. Without hugepages the EAL gets
//! `--no-huge --no-shconf` and a memory size from the mbuf count; with them `--in-memory`, so
//! that no runtime files are left behind by a crash in either case.

use ctrlplane::config::Config;

/// Lcore id of worker `index`.
pub fn worker_lcore(index: usize) -> u32 {
    index as u32 + 1
}

pub fn eal_args(config: &Config) -> Vec<String> {
    let mut lcores = format!("0@{}", config.cpu.control);
    for (i, cpu) in config.cpu.workers.iter().enumerate() {
        lcores.push_str(&format!(",{}@{}", worker_lcore(i), cpu));
    }
    let mut args = vec!["--lcores".to_owned(), lcores, "--main-lcore".to_owned(), "0".to_owned()];
    args.push("--no-telemetry".to_owned());
    if config.dpdk.hugepages {
        args.push("--in-memory".to_owned());
    } else {
        args.extend(["--no-huge", "--no-shconf", "-m"].map(str::to_owned));
        args.push(no_huge_memory_mb(config.dpdk.mbufs).to_string());
    }
    args.extend(config.dpdk.args.iter().cloned());
    args.extend(config.interfaces.iter().filter_map(|i| i.af_xdp_vdev(config.cpu.workers.len())));
    args
}

/// Enough heap for the mbuf pool (about 2.5 KiB an mbuf) plus the EAL's own needs.
fn no_huge_memory_mb(mbufs: u32) -> u64 {
    (128 + u64::from(mbufs) * 5 / 2 / 1024).max(256)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctrlplane::config::{parse, Host};

    fn config(text: &str) -> Config {
        parse(text, "test.toml", &Host { cpus: 4 }).expect("valid config")
    }

    const BASE: &str = r#"
[dpdk]
args = ["--no-pci", "--vdev=net_af_packet0,iface=lb0"]
hugepages = false
mbufs = 16383
[cpu]
control = 0
workers = [1, 0]
[[interface]]
name = "wan"
device = "net_af_packet0"
addresses = ["198.18.0.1/24"]
"#;

    #[test]
    fn lcores_map_workers_after_control() {
        let args = eal_args(&config(BASE));
        assert_eq!(&args[..4], ["--lcores", "0@0,1@1,2@0", "--main-lcore", "0"]);
    }

    #[test]
    fn no_huge_gets_memory_and_no_shared_files() {
        let args = eal_args(&config(BASE));
        let at = args.iter().position(|a| a == "--no-huge").expect("--no-huge");
        assert_eq!(&args[at..at + 4], ["--no-huge", "--no-shconf", "-m", "256"]);
        assert!(!args.contains(&"--in-memory".to_owned()));
    }

    #[test]
    fn hugepages_run_in_memory_and_user_args_come_last() {
        let args = eal_args(&config(&BASE.replace("hugepages = false", "hugepages = true")));
        assert!(args.contains(&"--in-memory".to_owned()));
        assert!(!args.contains(&"--no-huge".to_owned()));
        assert_eq!(&args[args.len() - 2..], ["--no-pci", "--vdev=net_af_packet0,iface=lb0"]);
    }

    #[test]
    fn an_af_xdp_device_gets_a_socket_per_worker_without_busy_polling() {
        let text =
            format!("{BASE}[[interface]]\nname = \"lan\"\ndevice = \"af_xdp:eth1\"\naddresses = [\"198.18.1.1/24\"]\n");
        let config = config(&text);
        let args = eal_args(&config);
        assert_eq!(
            args.last().map(String::as_str),
            Some("--vdev=net_af_xdp_lan,iface=eth1,start_queue=0,queue_count=2,busy_budget=0")
        );
        assert_eq!(config.interfaces[1].dpdk_device(), "net_af_xdp_lan");
        assert_eq!(config.interfaces[0].dpdk_device(), "net_af_packet0", "other devices as written");
    }
}
