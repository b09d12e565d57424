//! `sluice-gen`: the benchmark traffic generator. One DPDK process, two ports: it plays every
//! client on the port facing the balancer's client link and every backend on the port facing
//! its backend link, so one process measures a whole FULLNAT round trip.
//!
//! ```text
//! sluice-gen --client-vdev DEV --backend-vdev DEV [--mode fullnat|ceiling|new-flows|tcp|syn] ...
//! ```
//! Every flag, with its default, is in `sluice-gen --help` (defined once, in `cli`).
//! DEV is a vdev argument such as `net_memif0,role=client,socket=/run/x/wan.sock` or
//! `net_af_xdp0,iface=veth0`; the EAL gets `--vdev=DEV` for each, `--no-pci`, `--no-telemetry`,
//! `--lcores 0@C0[,1@C1]` and `--in-memory` (or the `--no-huge` set), so nothing outlives it.
//! Every address used lies in 198.18.0.0/15.
//!
//! Modes:
//! - `fullnat`: UDP from flow i = (client address i % N, port 1024 + i / N) to the VIP. The
//!   balancer's MAC is learned by ARP for the VIP (asked from the first client address). The
//!   backend side answers ARP for any address (proxy ARP) and reflects every datagram; replies
//!   must come from the VIP to one of the K flows with right checksums, else they count as bad
//!   (`bad_reasons` says why). The client side answers ARP for its own addresses.
//! - `ceiling`: for a plain forwarder (`dpdk-testpmd --forward-mode=io` between the two ports):
//!   no ARP, Ethernet destination `--client-peer-mac` or the backend port's MAC, and every frame
//!   returning to the client port counts as received.
//! - `new-flows`: as fullnat, but every datagram from the next client (address, port) of the
//!   whole space, so each opens a session; `sessions_per_s` = replies per second.
//! - `tcp`: per connection SYN, SYN-ACK, ACK + request, response + FIN, FIN-ACK, ACK (see
//!   `tcp`); `--rate` paces SYNs; `connections_per_s` counts responses received.
//! - `syn`: SYNs from fresh tuples and nothing more, as a SYN flood (of the benchmark's own
//!   addresses) does; `syn_acks_per_s` counts the SYN+ACKs from the VIP (a SYN proxy's answers),
//!   and latency is SYN to SYN+ACK.
//!
//! Before measuring, one frame every 10 ms must make a whole round trip (at most 5 s): links
//! still coming up and neighbour tables still filling are not counted as loss. At `--rate max`
//! the rings between the processes fill, so latency then measures queueing: measure latency
//! at a fixed rate below the ceiling.
//!
//! Output: progress on stderr once a second; at the end one JSON object on stdout (DPDK's own
//! log lines, which the Linux EAL may write to stdout, are sent to stderr):
//! `mode`, `duration_s` (measured sending time), `sent` (frames the port accepted), `received`
//! (good replies or segments), `bad`, `reflected` (frames the backend side answered), `lost`
//! (sent - received; tcp: connections opened - completed), `tx_pps`, `rx_pps`, `latency_ns`
//! {`p50`, `p99`, `max`, `samples`} (UDP: reply TSC - stamp TSC; tcp: SYN to response),
//! `connections_per_s` (tcp, else null), `sessions_per_s` (new-flows, else null),
//! `syn_acks_per_s` (syn, else null),
//! `cycles_per_packet_generator` (busy cycles of all generator lcores per frame sent, a busy
//! cycle being one spent in a poll that moved a packet), and detail objects `bad_reasons`,
//! `connections`, `client`, `backend`, `config`. Exit 0 after a run, 1 on a run-time error
//! (no link, no ARP reply, no round trip in the warm-up), 2 on a usage error. SIGINT or SIGTERM end the run early, with output.

mod arp;
mod backend;
mod cli;
mod client;
mod histogram;
mod pace;
mod reply;
mod report;
mod space;
mod tcp;
mod udp;

use std::io::Write;
use std::os::fd::FromRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use dataplane::dpdk::{self, Eal, Mempool, Port};
use dataplane::wire::MacAddr;
use serde_json::Value;

use backend::{Backend, BackendSide};
use cli::{Command, Mode, Options};
use client::Client;
use report::{Outcome, SharedBackend};

const MBUFS: u32 = 16383;
const MBUF_CACHE: u32 = 256;
const LINK_TIMEOUT: Duration = Duration::from_secs(10);

/// Set by SIGINT or SIGTERM: the run ends early and still reports.
static STOP: LazyLock<Arc<AtomicBool>> = LazyLock::new(Default::default);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    ExitCode::from(run_command_line(&args) as u8)
}

/// Runs the generator with `args` (without the program name); returns the exit code.
fn run_command_line(args: &[String]) -> i32 {
    let options = match cli::parse(args) {
        Ok(Command::Print(text)) => {
            print!("{text}");
            return 0;
        }
        Ok(Command::Run(o)) => o,
        Err(e) => {
            eprint!("{e}");
            return 2;
        }
    };
    let Some(mut stdout) = keep_stdout_for_json() else {
        eprintln!("sluice-gen: error: cannot duplicate stdout");
        return 1;
    };
    match run(&options) {
        Ok(report) => match writeln!(stdout, "{report}") {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("sluice-gen: error: writing the report: {e}");
                1
            }
        },
        Err(e) => {
            eprintln!("sluice-gen: error: {e}");
            1
        }
    }
}

/// Keeps the real stdout for the JSON report and points fd 1 at stderr, so that whatever
/// DPDK prints cannot mix with the report.
fn keep_stdout_for_json() -> Option<std::fs::File> {
    // SAFETY: plain fd duplication; the new descriptor is owned by the returned File alone.
    unsafe {
        let saved = libc::dup(libc::STDOUT_FILENO);
        if saved < 0 || libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) < 0 {
            return None;
        }
        Some(std::fs::File::from_raw_fd(saved))
    }
}

fn install_signal_handlers() -> Result<(), String> {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&STOP)).map_err(|e| format!("signal {signal}: {e}"))?;
    }
    Ok(())
}

fn run(o: &Options) -> Result<Value, String> {
    if o.cpus.len() == 2 && o.cpus[0] == o.cpus[1] {
        eprintln!(
            "sluice-gen: warning: both lcores on CPU {}: they take turns in scheduler slices of \
             milliseconds, so rings overflow and rates collapse; prefer --cores 1",
            o.cpus[0]
        );
    }
    let eal = Eal::init(&o.eal_args(std::process::id())).map_err(|e| e.to_string())?;
    install_signal_handlers()?;
    let pool = Mempool::pktmbuf("sluice_gen", MBUFS, MBUF_CACHE, eal.socket_id()).map_err(|e| e.to_string())?;
    let client_port = open_port(&o.client_vdev, &pool)?;
    let backend_port = open_port(&o.backend_vdev, &pool)?;
    wait_for_links(&[&client_port, &backend_port])?;
    let client_mac = MacAddr(client_port.mac().map_err(|e| e.to_string())?);
    let backend_mac = MacAddr(backend_port.mac().map_err(|e| e.to_string())?);
    let hz = dpdk::tsc_hz();
    eprintln!(
        "sluice-gen: {} mode, client port {} ({client_mac}), backend port {} ({backend_mac}), {} core(s), TSC {:.3} GHz",
        o.mode.name(),
        client_port.name(),
        backend_port.name(),
        o.cores,
        hz as f64 / 1e9
    );

    let shared = Arc::new(SharedBackend::default());
    let mut backend = Backend::new(backend_port.id(), backend_mac, o.mode == Mode::Tcp, shared.clone());
    let client = Client::new(o, client_port.id(), client_mac, backend_mac, pool.handle(), hz)?;
    let (measured, backend_counts) = if o.cores == 2 {
        let halt = Arc::new(AtomicBool::new(false));
        let lcore_halt = halt.clone();
        let lcore = dpdk::launch(1, move || backend.run(&lcore_halt)).map_err(|e| e.to_string())?;
        let measured = client.run(&mut BackendSide::other_lcore(&shared), &STOP);
        halt.store(true, Ordering::Relaxed);
        if !lcore.wait() {
            return Err("the backend lcore failed".into());
        }
        let measured = measured?;
        let backend_counts = shared.read().since(measured.backend_base);
        (measured, backend_counts)
    } else {
        let measured = client.run(&mut BackendSide::same_lcore(&mut backend, &shared), &STOP)?;
        let backend_counts = backend.counts().since(measured.backend_base);
        (measured, backend_counts)
    };

    let outcome = Outcome {
        options: o,
        send_s: measured.send_s,
        client: measured.counts,
        backend: backend_counts,
        latency: &measured.latency,
    };
    let report = report::json(&outcome);
    log_port_stats(&client_port);
    log_port_stats(&backend_port);
    // Ports stop and close before the pool they fill from is freed, and both before the EAL.
    drop((client_port, backend_port));
    drop(pool);
    drop(eal);
    Ok(report)
}

fn open_port(vdev: &str, pool: &Mempool) -> Result<Port, String> {
    let name = cli::device_name(vdev);
    let mut port = Port::open(name).map_err(|e| e.to_string())?;
    port.configure(1, pool).map_err(|e| e.to_string())?;
    port.start().map_err(|e| e.to_string())?;
    Ok(port)
}

fn wait_for_links(ports: &[&Port]) -> Result<(), String> {
    let deadline = Instant::now() + LINK_TIMEOUT;
    loop {
        let down: Vec<&str> =
            ports.iter().filter(|p| !p.link().map(|l| l.up).unwrap_or(false)).map(|p| p.name()).collect();
        if down.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline || STOP.load(Ordering::Relaxed) {
            return Err(format!("link still down after {} s: {}", LINK_TIMEOUT.as_secs(), down.join(", ")));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn log_port_stats(port: &Port) {
    if let Ok(s) = port.stats() {
        eprintln!(
            "sluice-gen: port {}: rx {} tx {} missed {} rx_errors {} tx_errors {} rx_nombuf {}",
            port.name(),
            s.rx_packets,
            s.tx_packets,
            s.rx_missed,
            s.rx_errors,
            s.tx_errors,
            s.rx_nombuf
        );
    }
}
