use super::*;

const CLIENT: &str = "net_memif0,role=client,socket=/tmp/sg/a.sock";
const BACKEND: &str = "net_memif1,role=client,socket=/tmp/sg/b.sock";

fn args(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> =
        ["--client-vdev", CLIENT, "--backend-vdev", BACKEND].iter().map(|s| s.to_string()).collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn options(extra: &[&str]) -> Options {
    match parse(&args(extra)) {
        Ok(Command::Run(o)) => *o,
        Ok(Command::Print(_)) => panic!("help"),
        Err(e) => panic!("{e}"),
    }
}

fn error(extra: &[&str]) -> String {
    match parse(&args(extra)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("{extra:?} accepted"),
    }
}

#[test]
fn defaults() {
    let o = options(&[]);
    assert_eq!(o.mode, Mode::FullNat);
    assert_eq!((o.flows, o.size, o.frame_len(), o.rate), (256, 64, 60, Rate::Max));
    assert_eq!(o.vip, "198.18.0.10:53".parse().unwrap());
    assert_eq!(o.space.addresses(), 8);
    assert_eq!(o.space.address(0), Ipv4Addr::new(198, 18, 0, 2));
    assert_eq!((o.cores, o.cpus.clone(), o.duration_s, o.drain_ms), (1, vec![0], 10.0, 200));
    assert!(o.hugepages && o.client_peer_mac.is_none());
}

#[test]
fn every_option_both_spellings() {
    let o = options(&[
        "--mode=ceiling",
        "--flows",
        "1000",
        "--client-ips=16",
        "--client-base",
        "198.18.0.100",
        "--size=1518",
        "--rate",
        "2.5m",
        "--duration=5",
        "--vip",
        "198.18.0.20:7",
        "--client-peer-mac=02:00:00:00:00:AB",
        "--cores=2",
        "--cpus",
        "1,0",
        "--no-huge",
        "--eal=--log-level=7",
        "--drain-ms",
        "50",
    ]);
    assert_eq!(o.mode, Mode::Ceiling);
    assert_eq!((o.flows, o.space.addresses(), o.space.address(0)), (1000, 16, Ipv4Addr::new(198, 18, 0, 100)));
    assert_eq!((o.size, o.frame_len(), o.rate, o.duration_s), (1518, 1514, Rate::PerSecond(2_500_000), 5.0));
    assert_eq!(o.vip, SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 20), 7));
    assert_eq!(o.client_peer_mac, Some(MacAddr([2, 0, 0, 0, 0, 0xab])));
    assert_eq!((o.cores, o.cpus.clone(), o.hugepages, o.drain_ms), (2, vec![1, 0], false, 50));
    assert_eq!(o.extra_eal, ["--log-level=7"]);
}

#[test]
fn fresh_tuple_modes_use_the_whole_space() {
    let o = options(&["--mode", "new-flows"]);
    assert_eq!(o.space.addresses(), 250);
    assert_eq!(o.flows, 250 * 64_512);
    let o = options(&["--mode", "tcp", "--vip", "198.18.0.10:80", "--client-ips", "2"]);
    assert_eq!(o.flows, 2 * 64_512);
    assert!(error(&["--mode", "tcp", "--size", "128"]).contains("UDP modes"));
    assert!(error(&["--mode", "new-flows", "--flows", "5"]).contains("new flow"));
}

#[test]
fn refuses_bad_values() {
    assert!(parse(&["--backend-vdev".to_string(), BACKEND.to_string()])
        .err()
        .unwrap()
        .to_string()
        .contains("--client-vdev"));
    assert!(error(&["--size", "63"]).contains("--size"));
    assert!(error(&["--size", "1519"]).contains("--size"));
    assert!(error(&["--flows", "0"]).contains("--flows"));
    assert!(error(&["--flows", "600000"]).contains("between 1 and 516096"));
    assert!(error(&["--mode", "dsr"]).contains("--mode"));
    assert!(error(&["--rate", "lots"]).contains("rate"));
    assert!(error(&["--duration", "0"]).contains("--duration"));
    assert!(error(&["--duration", "forever"]).contains("--duration"));
    assert!(error(&["--vip", "10.0.0.1:53"]).contains("198.18.0.0/15"));
    assert!(error(&["--vip", "198.18.0.10"]).contains("IPv4:PORT"));
    assert!(error(&["--client-base", "192.168.0.2"]).contains("198.18.0.0/15"));
    assert!(error(&["--client-peer-mac", "02:00:00:00:00"]).contains("MAC"));
    assert!(error(&["--client-peer-mac", "02:00:00:00:00:100"]).contains("MAC"));
    assert!(error(&["--cores", "3"]).contains("--cores"));
    assert!(error(&["--cores", "2", "--cpus", "1"]).contains("--cpus"));
    assert!(error(&["--bogus"]).contains("unexpected argument '--bogus'"));
    assert!(error(&["--flows"]).contains("a value is required for '--flows <K>'"));
}

#[test]
fn help_wins() {
    assert!(matches!(parse(&["--help".to_string()]), Ok(Command::Print(text)) if text.contains("--client-vdev <DEV>")));
}

#[test]
fn eal_arguments() {
    let o = options(&["--cores", "2", "--cpus", "1,0", "--eal", "--log-level=lib.eal:debug"]);
    assert_eq!(
        o.eal_args(42),
        [
            "--lcores",
            "0@1,1@0",
            "--main-lcore",
            "0",
            "--no-telemetry",
            "--no-pci",
            "--in-memory",
            &format!("--vdev={CLIENT}"),
            &format!("--vdev={BACKEND}"),
            "--log-level=lib.eal:debug",
        ]
    );
    let o = options(&["--no-huge", "--cpus", "1"]);
    let a = o.eal_args(42);
    assert_eq!(&a[..2], ["--lcores", "0@1"]);
    let at = a.iter().position(|s| s == "--no-huge").unwrap();
    assert_eq!(&a[at..at + 6], ["--no-huge", "--no-shconf", "-m", "512", "--file-prefix", "sluice-gen-42"]);
    assert_eq!(device_name(CLIENT), "net_memif0");
    assert_eq!(device_name("net_null0"), "net_null0");
}
