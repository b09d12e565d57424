use std::time::Duration;

use crate::config::test_support::{config, errors, errors_on, warnings};
use crate::config::{Host, IdleMode, SteeringMode, WhenFull};

#[test]
fn written_values_replace_defaults() {
    let config = config(
        r#"
[dpdk]
args = ["--no-pci"]
hugepages = false
mbufs = 5632
[cpu]
control = 1
workers = [0]
idle = "adaptive"
[api]
socket = "/tmp/s.sock"
metrics = "[::1]:9000"
[sessions]
capacity = 1
when_full = "drop"
[steering]
mode = "redirect"
[timeouts]
udp = "1m30s"
tcp_fin_wait = "3m"
tcp_close_wait = "45s"
tcp_last_ack = "20s"
tcp_time_wait = "2s"
udp_new = "500ms"
"#,
    );
    assert_eq!(config.dpdk.args, ["--no-pci"]);
    assert!(!config.dpdk.hugepages);
    assert_eq!(config.dpdk.mbufs, 5632);
    assert_eq!((config.cpu.control, config.cpu.workers.as_slice()), (1, &[0][..]));
    assert_eq!(config.cpu.idle, IdleMode::Adaptive);
    assert_eq!(config.api.socket.to_str(), Some("/tmp/s.sock"));
    assert_eq!(config.api.metrics.to_string(), "[::1]:9000");
    assert_eq!(config.sessions.capacity, 1);
    assert_eq!(config.steering.mode, SteeringMode::Redirect);
    assert_eq!(config.timeouts.udp, Duration::from_secs(90));
    assert_eq!(config.timeouts.tcp_syn, Duration::from_secs(30));
    assert_eq!(config.sessions.when_full, WhenFull::Drop);
    let t = &config.timeouts;
    assert_eq!(
        [t.tcp_fin_wait, t.tcp_close_wait, t.tcp_last_ack, t.tcp_time_wait, t.udp_new].map(|d| d.as_millis()),
        [180_000, 45_000, 20_000, 2_000, 500]
    );
}

#[test]
fn when_full_lists_its_choices() {
    assert_eq!(
        errors(
            "[sessions]
when_full = \"lru\"\n"
        ),
        r#"t.toml:2:13: invalid when_full action "lru": expected "evict" or "drop""#
    );
    assert!(errors("[timeouts]\ntcp_time_wait = \"0s\"\n").ends_with("must be more than zero"));
}

#[test]
fn mbufs_must_fill_the_rx_rings() {
    assert_eq!(
        errors("[dpdk]\nmbufs = 100\n"),
        "t.toml:2:9: dpdk.mbufs must be at least 1023, got 100: the pool must hold enough mbufs to fill the rx rings"
    );
    assert_eq!(
        errors("[dpdk]\nmbufs = 5000000000\n"),
        "t.toml:2:9: dpdk.mbufs must be at most 4294967295, got 5000000000"
    );
}

#[test]
fn the_pool_must_fill_every_ring_of_every_worker() {
    assert_eq!(crate::config::mbufs_needed(1, 2), 2 * 1024 * 2 + 2 * 256 + 1024);
    assert_eq!(
        errors("[dpdk]\nmbufs = 5631\n"),
        "t.toml:2:9: dpdk.mbufs is 5631, but 1 worker(s) on 2 interface(s) need at least 5632: rx rings of 1024 \
         on every port and kernel interface, per-core caches of 256, and 1024 in flight"
    );
    assert_eq!(
        errors_on("[cpu]\ncontrol = 0\nworkers = [1, 2]\n[dpdk]\nmbufs = 8191\n", &Host { cpus: 3 }),
        "t.toml:5:9: dpdk.mbufs is 8191, but 2 worker(s) on 2 interface(s) need at least 9984: rx rings of 1024 \
         on every port and kernel interface, per-core caches of 256, and 1024 in flight"
    );
}

#[test]
fn session_capacity_stops_where_session_ids_do() {
    assert_eq!(config("[sessions]\ncapacity = 268435456\n").sessions.capacity, 1 << 28);
    assert_eq!(
        errors("[sessions]\ncapacity = 268435457\n"),
        "t.toml:2:12: sessions.capacity must be at most 268435456, got 268435457"
    );
}

#[test]
fn cores_must_exist() {
    assert_eq!(errors("[cpu]\ncontrol = 7\n"), "t.toml:2:11: core 7 does not exist: this machine has 2 CPUs");
    assert_eq!(errors("[cpu]\nworkers = [1, 7]\n"), "t.toml:2:15: core 7 does not exist: this machine has 2 CPUs");
    assert_eq!(errors("[cpu]\ncontrol = -1\n"), "t.toml:2:11: core -1 is not a CPU number: cores count from 0");
}

#[test]
fn default_worker_is_checked_at_the_section_or_the_top() {
    let one_cpu = Host { cpus: 1 };
    let message = "core 1 does not exist: this machine has 1 CPU (cpu.workers defaults to [1])";
    assert_eq!(errors_on("", &one_cpu), format!("t.toml:1:1: {message}"));
    assert_eq!(errors_on("\n[cpu]\nidle = \"busy\"\n", &one_cpu), format!("t.toml:2:1: {message}"));
}

#[test]
fn workers_are_listed_once_each() {
    assert_eq!(
        errors("[cpu]\nworkers = []\n"),
        "t.toml:2:11: cpu.workers is empty: at least one worker core is needed"
    );
    assert_eq!(
        errors("[cpu]\nworkers = [1, 1]\n"),
        "t.toml:2:15: duplicate worker core 1 (first at line 2, column 12)"
    );
}

#[test]
fn a_worker_on_the_control_core_is_a_warning() {
    assert_eq!(
        warnings("[cpu]\ncontrol = 0\nworkers = [0, 1]\n"),
        "t.toml:3:12: warning: worker 0 shares the control core; fine for tests, not for production"
    );
    assert_eq!(
        warnings("[cpu]\ncontrol = 1\n"),
        "t.toml:1:1: warning: worker 1 shares the control core; fine for tests, not for production"
    );
    assert_eq!(warnings("[cpu]\ncontrol = 0\nworkers = [1]\n"), "");
}

#[test]
fn idle_mode_lists_its_choices() {
    assert_eq!(
        errors("[cpu]\nidle = \"spin\"\n"),
        r#"t.toml:2:8: invalid idle mode "spin": expected "busy" or "adaptive""#
    );
}

#[test]
fn api_addresses() {
    assert_eq!(
        errors("[api]\nsocket = \"sluice.sock\"\n"),
        r#"t.toml:2:10: api.socket must be an absolute path, got "sluice.sock""#
    );
    assert_eq!(
        errors("[api]\nmetrics = \"localhost:9273\"\n"),
        r#"t.toml:2:11: invalid api.metrics "localhost:9273": expected a socket address ip:port, e.g. "127.0.0.1:9273""#
    );
}

#[test]
fn session_capacity_is_at_least_one() {
    assert_eq!(errors("[sessions]\ncapacity = 0\n"), "t.toml:2:12: sessions.capacity must be at least 1, got 0");
}

#[test]
fn steering_mode_lists_its_choices() {
    assert_eq!(
        errors("[steering]\nmode = \"ecmp\"\n"),
        r#"t.toml:2:8: invalid steering mode "ecmp": expected "auto", "flow", "rss" or "redirect""#
    );
}

#[test]
fn timeouts_are_durations_with_units() {
    let text = "[timeouts]\ntcp_syn = \"5\"\ntcp_established = 900\ntcp_closing = \"0s\"\nudp = \"30 s\"\n";
    let expected = [
        r#"t.toml:2:11: invalid duration "5": expected a number with a unit, e.g. "500ms", "2s", "5m""#,
        r#"t.toml:3:19: invalid duration 900: expected a number with a unit, e.g. "500ms", "2s", "5m""#,
        r#"t.toml:4:15: invalid duration "0s": must be more than zero"#,
        r#"t.toml:5:7: invalid duration "30 s": expected a number with a unit, e.g. "500ms", "2s", "5m""#,
    ];
    assert_eq!(errors(text), expected.join("\n"));
}

#[test]
fn every_problem_is_reported_in_file_order() {
    let text = "[sessions]\ncapacity = 0\n[dpdk]\nmbufs = 1\n[cpu]\ncontrol = 9\nworkers = [1, 1]\n";
    let expected = [
        "t.toml:2:12: sessions.capacity must be at least 1, got 0",
        "t.toml:4:9: dpdk.mbufs must be at least 1023, got 1: the pool must hold enough mbufs to fill the rx rings",
        "t.toml:6:11: core 9 does not exist: this machine has 2 CPUs",
        "t.toml:7:15: duplicate worker core 1 (first at line 7, column 12)",
    ];
    assert_eq!(errors(text), expected.join("\n"));
}

#[test]
fn durations_of_the_wrong_type_are_shown_as_written() {
    let text = "[timeouts]\ntcp_syn = true\nudp = [\"5s\"]\ntcp_closing = 1.5\n";
    let hint = r#"expected a number with a unit, e.g. "500ms", "2s", "5m""#;
    let expected = [
        format!("t.toml:2:11: invalid duration true: {hint}"),
        format!("t.toml:3:7: invalid duration (an array): {hint}"),
        format!("t.toml:4:15: invalid duration 1.5: {hint}"),
    ];
    assert_eq!(errors(text), expected.join("\n"));
}

#[test]
fn eal_options_sluice_sets_itself_are_refused() {
    let text = "[dpdk]\nargs = [\"--no-pci\", \"-l\", \"--lcores=0@0\", \"-m512\"]\n";
    assert_eq!(
        errors(text),
        [
            "t.toml:2:21: dpdk.args must not set -l: Sluice derives lcores from [cpu] and memory options from dpdk.hugepages",
            "t.toml:2:27: dpdk.args must not set --lcores: Sluice derives lcores from [cpu] and memory options from dpdk.hugepages",
            "t.toml:2:43: dpdk.args must not set -m: Sluice derives lcores from [cpu] and memory options from dpdk.hugepages",
        ]
        .join("\n")
    );
}
