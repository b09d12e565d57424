//! The command line (documented in `gen/mod.rs`) and the EAL arguments derived from it.

use std::net::{Ipv4Addr, SocketAddrV4};

use dataplane::wire::MacAddr;

use super::pace::Rate;
use super::space::{self, ClientSpace};
use super::udp::{MAX_FRAME, MIN_FRAME};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Through a FULLNAT balancer: K flows of UDP, replies checked against the VIP.
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

    fn parse(text: &str) -> Result<Mode, String> {
        [Mode::FullNat, Mode::Ceiling, Mode::NewFlows, Mode::Tcp, Mode::Syn]
            .into_iter()
            .find(|m| m.name() == text)
            .ok_or_else(|| format!("--mode {text:?}: expected fullnat, ceiling, new-flows, tcp or syn"))
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
    Help,
}

const DEFAULT_BASE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const DEFAULT_VIP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 10), 53);

pub fn parse(args: &[String]) -> Result<Command, String> {
    let mut client_vdev = None;
    let mut backend_vdev = None;
    let mut mode = Mode::FullNat;
    let (mut flows, mut client_ips, mut size) = (None, None, None);
    let mut base = DEFAULT_BASE;
    let mut rate = Rate::Max;
    let mut duration_s = 10.0;
    let mut vip = DEFAULT_VIP;
    let mut client_peer_mac = None;
    let mut cores = 1u8;
    let mut cpus = None;
    let mut hugepages = true;
    let mut extra_eal = Vec::new();
    let mut drain_ms = 200;

    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = || inline.clone().or_else(|| it.next().cloned()).ok_or_else(|| format!("{flag} needs a value"));
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "--no-huge" => hugepages = false,
            "--client-vdev" => client_vdev = Some(value()?),
            "--backend-vdev" => backend_vdev = Some(value()?),
            "--mode" => mode = Mode::parse(&value()?)?,
            "--flows" => flows = Some(number::<u64>(flag, &value()?)?),
            "--client-ips" => client_ips = Some(number::<u32>(flag, &value()?)?),
            "--client-base" => base = value()?.parse().map_err(|_| format!("{flag}: expected an IPv4 address"))?,
            "--size" => size = Some(number::<usize>(flag, &value()?)?),
            "--rate" => rate = Rate::parse(&value()?)?,
            "--duration" => duration_s = seconds(flag, &value()?)?,
            "--vip" => vip = value()?.parse().map_err(|_| format!("{flag}: expected IPv4:PORT"))?,
            "--client-peer-mac" => client_peer_mac = Some(mac(&value()?)?),
            "--cores" => cores = number::<u8>(flag, &value()?)?,
            "--cpus" => cpus = Some(cpu_list(&value()?)?),
            "--eal" => extra_eal.push(value()?),
            "--drain-ms" => drain_ms = number::<u64>(flag, &value()?)?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }

    let client_vdev = client_vdev.ok_or("--client-vdev is required")?;
    let backend_vdev = backend_vdev.ok_or("--backend-vdev is required")?;
    if !(1..=2).contains(&cores) {
        return Err("--cores must be 1 or 2".into());
    }
    let cpus = cpus.unwrap_or_else(|| (0..u32::from(cores)).collect());
    if cpus.len() != usize::from(cores) {
        return Err(format!("--cpus lists {} CPUs for --cores {cores}", cpus.len()));
    }
    if !space::is_bench_address(*vip.ip()) {
        return Err(format!("--vip {vip}: use an address in 198.18.0.0/15"));
    }
    if mode.is_tcp() && (size.is_some() || flows.is_some()) {
        return Err("--size and --flows apply to the UDP modes; tcp uses a fresh tuple per connection".into());
    }
    if mode == Mode::NewFlows && flows.is_some() {
        return Err("--flows does not apply to new-flows: every datagram is a new flow".into());
    }
    let default_ips = if mode.fresh_tuples() { 250 } else { 8 };
    let space = ClientSpace::new(base, client_ips.unwrap_or(default_ips), *vip.ip())?;
    let flows = if mode.fresh_tuples() { space.capacity() } else { flows.unwrap_or(256) };
    if flows == 0 || flows > space.capacity() {
        return Err(format!(
            "--flows {flows}: between 1 and {} ({} addresses x 64512 ports)",
            space.capacity(),
            space.addresses()
        ));
    }
    let size = size.unwrap_or(64);
    if !(MIN_FRAME + 4..=MAX_FRAME + 4).contains(&size) {
        return Err(format!("--size {size}: between {} and {} bytes, FCS included", MIN_FRAME + 4, MAX_FRAME + 4));
    }
    Ok(Command::Run(Box::new(Options {
        client_vdev,
        backend_vdev,
        mode,
        flows,
        space,
        size,
        rate,
        duration_s,
        vip,
        client_peer_mac,
        cores,
        cpus,
        hugepages,
        extra_eal,
        drain_ms,
    })))
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

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("{flag} {text:?}: expected a non-negative integer"))
}

fn seconds(flag: &str, text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(s),
        _ => Err(format!("{flag} {text:?}: seconds, more than 0 and at most 86400")),
    }
}

fn cpu_list(text: &str) -> Result<Vec<u32>, String> {
    text.split(',').map(|c| c.trim().parse().map_err(|_| format!("--cpus {text:?}: expected C0[,C1]"))).collect()
}

pub fn mac(text: &str) -> Result<MacAddr, String> {
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
