//! The command line, defined once with clap (`sluice-gen --help` prints it), checked as a
//! whole, and the EAL arguments derived from it.

use std::net::{Ipv4Addr, SocketAddrV4};

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, ValueEnum};
use dataplane::wire::MacAddr;

use super::pace::Rate;
use super::space::{self, ClientSpace};
use super::udp::{MAX_FRAME, MIN_FRAME};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Through a FULLNAT balancer: K flows of UDP, replies checked against the VIP.
    #[value(name = "fullnat")]
    FullNat,
    /// Through a plain forwarder (`dpdk-testpmd` io): no ARP, replies counted unchecked.
    Ceiling,
    /// Every datagram from a new client address and port: one session per packet.
    NewFlows,
    /// Synthetic TCP connections: handshake, request, response, close.
    Tcp,
    /// SYNs from fresh tuples, nothing after: SYN+ACKs counted (a SYN proxy's answer rate).
    Syn,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::FullNat => "fullnat",
            Mode::Ceiling => "ceiling",
            Mode::NewFlows => "new-flows",
            Mode::Tcp => "tcp",
            Mode::Syn => "syn",
        }
    }

    /// UDP modes send stamped datagrams of `--size` over a fixed set of `--flows`.
    pub fn is_udp(self) -> bool {
        !self.is_tcp()
    }

    /// TCP modes open connections with SYNs from fresh tuples.
    pub fn is_tcp(self) -> bool {
        matches!(self, Mode::Tcp | Mode::Syn)
    }

    /// Modes that use a fresh client tuple per datagram or connection.
    pub fn fresh_tuples(self) -> bool {
        matches!(self, Mode::NewFlows | Mode::Tcp | Mode::Syn)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub client_vdev: String,
    pub backend_vdev: String,
    pub mode: Mode,
    /// Distinct client (address, port) pairs in fullnat and ceiling modes.
    pub flows: u64,
    pub space: ClientSpace,
    /// Frame size on the wire, FCS included.
    pub size: usize,
    pub rate: Rate,
    pub duration_s: f64,
    pub vip: SocketAddrV4,
    pub client_peer_mac: Option<MacAddr>,
    pub cores: u8,
    /// CPU of lcore 0 (client side) and, with two cores, of lcore 1 (backend side).
    pub cpus: Vec<u32>,
    pub hugepages: bool,
    pub extra_eal: Vec<String>,
    pub drain_ms: u64,
}

pub enum Command {
    Run(Box<Options>),
    /// `--help` or `--version`: the text to print, exit 0.
    Print(String),
}

/// Sluice's benchmark traffic generator: every client and every backend in one DPDK process,
/// two ports. Every address it uses lies in 198.18.0.0/15.
#[derive(Parser, Debug)]
#[command(name = "sluice-gen", version, about, max_term_width = 100)]
struct Args {
    /// The vdev facing the balancer's client link, e.g. net_memif0,role=client,socket=/run/x/wan.sock
    #[arg(long, value_name = "DEV")]
    client_vdev: String,
    /// The vdev facing the balancer's backend link, e.g. net_af_xdp0,iface=veth0
    #[arg(long, value_name = "DEV")]
    backend_vdev: String,
    /// What to send
    #[arg(long, value_enum, default_value = "fullnat")]
    mode: Mode,
    /// Client (address, port) pairs, UDP modes [default: 256]
    #[arg(long, value_name = "K")]
    flows: Option<u64>,
    /// Client addresses [default: 8, or 250 in new-flows, tcp and syn]
    #[arg(long, value_name = "N")]
    client_ips: Option<u32>,
    /// First client address (the VIP is skipped)
    #[arg(long, value_name = "IP", default_value = "198.18.0.2")]
    client_base: Ipv4Addr,
    /// Frame size with FCS, 64 to 1518, UDP modes [default: 64]
    #[arg(long, value_name = "BYTES")]
    size: Option<usize>,
    /// Per second, `k`/`m` suffixes, or max; tcp and syn: connections
    #[arg(long, value_name = "max|PPS", default_value = "max", value_parser = Rate::parse)]
    rate: Rate,
    /// Seconds of sending, more than 0 and at most 86400
    #[arg(long, value_name = "S", default_value = "10", value_parser = seconds)]
    duration: f64,
    /// The VIP, in 198.18.0.0/15
    #[arg(long, value_name = "IP:PORT", default_value = "198.18.0.10:53", value_parser = vip)]
    vip: SocketAddrV4,
    /// The balancer's MAC on the client link (skips ARP)
    #[arg(long, value_name = "MAC", value_parser = mac)]
    client_peer_mac: Option<MacAddr>,
    /// 1: one loop does both sides; 2: the backend side on lcore 1
    #[arg(long, value_name = "1|2", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    cores: u8,
    /// CPUs of lcore 0 (client side) and lcore 1 [default: 0[,1]]
    #[arg(long, value_name = "C0[,C1]", value_delimiter = ',')]
    cpus: Option<Vec<u32>>,
    /// EAL without hugepages (-m 512, --file-prefix sluice-gen-PID)
    #[arg(long)]
    no_huge: bool,
    /// An extra EAL argument, e.g. --eal=--log-level=lib.eal:debug (repeatable)
    #[arg(long = "eal", value_name = "ARG", allow_hyphen_values = true)]
    eal: Vec<String>,
    /// Milliseconds to wait for late replies after sending
    #[arg(long, value_name = "MS", default_value_t = 200)]
    drain_ms: u64,
}

/// Parses `args` (without the program name) and checks them as a whole.
pub fn parse(args: &[String]) -> Result<Command, clap::Error> {
    let line = std::iter::once("sluice-gen").chain(args.iter().map(String::as_str));
    match Args::try_parse_from(line) {
        Ok(a) => options(a)
            .map(|o| Command::Run(Box::new(o)))
            .map_err(|e| Args::command().error(ErrorKind::ValueValidation, e)),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            Ok(Command::Print(e.to_string()))
        }
        Err(e) => Err(e),
    }
}

/// What clap cannot check flag by flag.
fn options(a: Args) -> Result<Options, String> {
    let (mode, vip, cores) = (a.mode, a.vip, a.cores);
    let cpus = a.cpus.unwrap_or_else(|| (0..u32::from(cores)).collect());
    if cpus.len() != usize::from(cores) {
        return Err(format!("--cpus lists {} CPUs for --cores {cores}", cpus.len()));
    }
    if mode.is_tcp() && (a.size.is_some() || a.flows.is_some()) {
        return Err("--size and --flows apply to the UDP modes; tcp uses a fresh tuple per connection".into());
    }
    if mode == Mode::NewFlows && a.flows.is_some() {
        return Err("--flows does not apply to new-flows: every datagram is a new flow".into());
    }
    let default_ips = if mode.fresh_tuples() { 250 } else { 8 };
    let space = ClientSpace::new(a.client_base, a.client_ips.unwrap_or(default_ips), *vip.ip())?;
    let flows = if mode.fresh_tuples() { space.capacity() } else { a.flows.unwrap_or(256) };
    if flows == 0 || flows > space.capacity() {
        return Err(format!(
            "--flows {flows}: between 1 and {} ({} addresses x 64512 ports)",
            space.capacity(),
            space.addresses()
        ));
    }
    let size = a.size.unwrap_or(64);
    if !(MIN_FRAME + 4..=MAX_FRAME + 4).contains(&size) {
        return Err(format!("--size {size}: between {} and {} bytes, FCS included", MIN_FRAME + 4, MAX_FRAME + 4));
    }
    Ok(Options {
        client_vdev: a.client_vdev,
        backend_vdev: a.backend_vdev,
        mode,
        flows,
        space,
        size,
        rate: a.rate,
        duration_s: a.duration,
        vip,
        client_peer_mac: a.client_peer_mac,
        cores,
        cpus,
        hugepages: !a.no_huge,
        extra_eal: a.eal,
        drain_ms: a.drain_ms,
    })
}

impl Options {
    /// Frame length on the buffer (without the FCS the NIC adds).
    pub fn frame_len(&self) -> usize {
        self.size - 4
    }

    /// The EAL command line: lcore 0 (client side) and maybe lcore 1 (backend side) on the
    /// CPUs given, no PCI scan, no telemetry socket, no runtime files left behind, the two
    /// vdevs, then `--eal` extras.
    pub fn eal_args(&self, pid: u32) -> Vec<String> {
        let lcores: Vec<String> = self.cpus.iter().enumerate().map(|(l, c)| format!("{l}@{c}")).collect();
        let mut args = vec!["--lcores".to_owned(), lcores.join(","), "--main-lcore".to_owned(), "0".to_owned()];
        args.extend(["--no-telemetry", "--no-pci"].map(str::to_owned));
        if self.hugepages {
            args.push("--in-memory".to_owned());
        } else {
            args.extend(["--no-huge", "--no-shconf", "-m", "512", "--file-prefix"].map(str::to_owned));
            args.push(format!("sluice-gen-{pid}"));
        }
        args.push(format!("--vdev={}", self.client_vdev));
        args.push(format!("--vdev={}", self.backend_vdev));
        args.extend(self.extra_eal.iter().cloned());
        args
    }
}

/// The ethdev name of a vdev argument: what precedes the first comma.
pub fn device_name(vdev: &str) -> &str {
    vdev.split(',').next().unwrap_or(vdev)
}

fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(s),
        _ => Err("seconds, more than 0 and at most 86400".into()),
    }
}

fn vip(text: &str) -> Result<SocketAddrV4, String> {
    let vip: SocketAddrV4 = text.parse().map_err(|_| "expected IPv4:PORT")?;
    if !space::is_bench_address(*vip.ip()) {
        return Err("use an address in 198.18.0.0/15".into());
    }
    Ok(vip)
}

fn mac(text: &str) -> Result<MacAddr, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let bad = || format!("MAC {text:?}: expected six hex bytes like 02:00:00:00:00:01");
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut m = [0u8; 6];
    for (byte, part) in m.iter_mut().zip(&parts) {
        if part.is_empty() || part.len() > 2 {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    Ok(MacAddr(m))
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
