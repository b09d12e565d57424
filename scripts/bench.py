#!/usr/bin/env python3
"""Sluice's benchmark suite, driven by scripts/bench (which builds first).

Everything runs on this machine in one go, so that figures are compared within one run:
  1. the ceiling: dpdk-testpmd io-forwarding between two memif ports, fed by sluice-gen;
  2. Sluice over the same memif ports, 1 worker (and 2), UDP FULLNAT both ways, established
     flows; new sessions per second; synthetic TCP connections per second; added latency at
     10/50/90 % of Sluice's own maximum;
  3. the peers on one veth path, the same generator on af_xdp: Sluice on af_xdp, the kernel
     doing FULLNAT with nftables (DNAT + SNAT, numgen round robin), nginx's UDP stream proxy;
  4. memory per session and the session table at 10 million sessions (cargo bench).
Cores: the generator on CPU 0, the forwarder under test on CPU 1. Only 198.18.0.0/15 is used,
in namespaces made here and always removed; every process is stopped by its PID.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = Path("/run/sluice-bench")
OUT = ROOT / "docs" / "bench"
# SLUICE_BIN: another build of sluice to measure (an earlier commit's, for before and after).
SLUICE = Path(os.environ.get("SLUICE_BIN", ROOT / "target" / "release" / "sluice"))
GEN = ROOT / "target" / "release" / "sluice-gen"
SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))
FLOWS = int(os.environ.get("BENCH_FLOWS", "1024"))
NS = ["sb-lb", "sb-gen", "sb-peer"]


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def sh(*args, check=True, ns=None, capture=False):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in args]
    r = subprocess.run(cmd, check=False, text=True, capture_output=capture)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr if capture else r.returncode}")
    return r.stdout if capture else r.returncode


class Proc:
    """A background process, stopped by PID (SIGTERM, then SIGKILL) when the block ends."""

    def __init__(self, args, ns=None, log_path=None):
        cmd = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in args]
        self.log_path = log_path or RUN / f"{Path(str(args[0])).name}.log"
        self.log = open(self.log_path, "w")
        # stdin stays open and silent: dpdk-testpmd exits on end of input.
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def text(self):
        return Path(self.log_path).read_text(errors="replace")

    def wait_for(self, needle, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in self.text():
                return True
            if self.p.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{needle!r} not seen:\n{self.text()[-3000:]}")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def cleanup():
    for ns in NS:
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    shutil.rmtree(RUN, ignore_errors=True)


def gen(mode, client_vdev, backend_vdev, rate="max", duration=SECONDS, ns=None, extra=()):
    # Each client address gives 64,512 source ports: enough addresses for FLOWS flows.
    addresses = max(8, -(-FLOWS // 64512))
    flows = ["--flows", FLOWS, "--client-ips", addresses] if mode in ("fullnat", "ceiling") else []
    args = [GEN, "--mode", mode, "--client-vdev", client_vdev, "--backend-vdev", backend_vdev,
            "--rate", rate, "--duration", duration, *flows, "--cores", 1, "--cpus", 0, *extra]
    out = sh(*args, ns=ns, capture=True)
    return json.loads(out.strip().splitlines()[-1])


def gen_scraped(sluice, mode, client_vdev, backend_vdev, duration=SECONDS, **kw):
    """`gen`, with `sluice`'s metrics scraped a second before the generator stops: DPDK 22.11's
    memif PMD can crash a worker polling a port whose peer disconnects (a segfault in its rx
    path as the shared region goes away, seen here when the generator leaves; docs/benchmarks.md),
    so nothing is asked of Sluice after the generator is gone."""
    scraped = {}

    def scrape():
        try:
            scraped["m"] = sluice.metrics()
        except RuntimeError as e:
            scraped["error"] = e

    timer = threading.Timer(max(duration - 1, 0.5), scrape)
    timer.start()
    try:
        r = gen(mode, client_vdev, backend_vdev, duration=duration, **kw)
    finally:
        timer.join()
    if "m" not in scraped:
        raise RuntimeError(f"metrics not scraped during the run: {scraped.get('error')}")
    return r, scraped["m"]


def memif(name, role):
    # A socket file, not an abstract one: abstract sockets live in one network namespace.
    return f"net_memif{name},role={role},socket={RUN}/{name}.sock,socket-abstract=no"


def sluice_config(ports, workers=(1,), capacity=None, local_ips=None, short_timeouts=False):
    # Room for every flow: sessions, and local ports (64,512 a local IP, each worker its own
    # share of the IPs); otherwise established flows would evict each other's sessions.
    capacity = capacity or max(1 << 20, 2 * FLOWS)
    local_ips = local_ips or max(4, len(workers) * (FLOWS // 60000 + 1))
    udp_locals = ", ".join(f'"198.18.{2 + i // 200}.{i % 200 + 10}"' for i in range(local_ips))
    tcp_locals = ", ".join(f'"198.18.{4 + i // 200}.{i % 200 + 10}"' for i in range(local_ips))
    # New-session runs: sessions must make way quickly, or the table and ports fill up.
    timeouts = "\n".join(
        f'{key} = "{value}"'
        for key, value in [("udp", "1s"), ("udp_new", "1s"), ("tcp_syn", "1s"), ("tcp_closing", "1s"),
                           ("tcp_fin_wait", "1s"), ("tcp_close_wait", "1s"), ("tcp_last_ack", "1s"),
                           ("tcp_time_wait", "1s"), ("tcp_established", "5s")]
    ) if short_timeouts else ""
    args = ", ".join(f'"{a}"' for a in ["--no-pci"] + [f"--vdev={p}" for p in ports])
    return f"""
[dpdk]
args = [{args}]
hugepages = true
mbufs = 32767
[cpu]
control = 0
workers = {list(workers)}
idle = "busy"
[api]
socket = "{RUN}/sluice.sock"
metrics = "127.0.0.1:9274"
[sessions]
capacity = {capacity}
[timeouts]
{timeouts}
[[interface]]
name = "wan"
device = "{ports[0].split(',')[0]}"
addresses = ["198.18.0.1/24"]
[[interface]]
name = "lan"
device = "{ports[1].split(',')[0]}"
addresses = ["198.18.1.1/24"]
[[service]]
name = "udp"
vip = "198.18.0.10:53"
protocol = "udp"
local_ips = [{udp_locals}]
[[service.backend]]
address = "198.18.1.2:53"
[[service.backend]]
address = "198.18.1.3:53"
[[service]]
name = "tcp"
vip = "198.18.0.10:80"
protocol = "tcp"
local_ips = [{tcp_locals}]
[[service.backend]]
address = "198.18.1.2:80"
[[service.backend]]
address = "198.18.1.3:80"
"""


class Sluice(Proc):
    def __init__(self, ports, ns, **kw):
        cfg = RUN / "sluice.toml"
        cfg.write_text(sluice_config(ports, **kw))
        super().__init__([SLUICE, "--config", cfg], ns=ns, log_path=RUN / "sluice.log")
        self.ns = ns
        self.wait_for("sluice: info: ready:")

    def metrics(self):
        text = sh("curl", "-sS", "--max-time", "5", "http://127.0.0.1:9274/metrics", ns=self.ns, capture=True)
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values


def metric(values, prefix, **labels):
    total = 0.0
    for name, v in values.items():
        if name.startswith(prefix) and all(f'{k}="{w}"' in name for k, w in labels.items()):
            total += v
    return total


def tsc_hz():
    out = Path("/proc/cpuinfo").read_text()
    m = re.search(r"cpu MHz\s*:\s*([\d.]+)", out)
    return float(m.group(1)) * 1e6 if m else 2.7e9


def cpu_busy(cpu):
    fields = [l for l in Path("/proc/stat").read_text().splitlines() if l.startswith(f"cpu{cpu} ")][0].split()[1:]
    v = list(map(int, fields))
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def mpps(x):
    return x / 1e6


def testpmd(vdevs=None, ns=None):
    """dpdk-testpmd io-forwarding on CPU 1 between two ports: the memif servers by default."""
    vdevs = vdevs or [memif(0, "server"), memif(1, "server")]
    args = ["dpdk-testpmd", "--lcores", "0@1,1@1", "--main-lcore", "0", "--no-pci", "--in-memory", "--no-telemetry",
            *[f"--vdev={v}" for v in vdevs], "--",
            "--forward-mode=io", "--auto-start", "--nb-cores=1", "--no-lsc-interrupt"]
    p = Proc(args, ns=ns, log_path=RUN / "testpmd.log")
    p.wait_for("Checking link statuses", timeout=60)
    return p


def run_memif(results):
    client, backend = memif(0, "client"), memif(1, "client")
    servers = [memif(0, "server"), memif(1, "server")]
    hz = tsc_hz()
    # Sluice runs in a namespace of its own: its kernel interfaces are called wan and lan.
    sh("ip", "netns", "add", "sb-lb")
    sh("ip", "link", "set", "lo", "up", ns="sb-lb")

    log("ceiling: dpdk-testpmd io forwarding between the memif ports")
    with testpmd():
        c = gen("ceiling", client, backend)
        results["ceiling"] = {"mpps_each_way": mpps(c["rx_pps"]), "mpps_total": 2 * mpps(c["rx_pps"]), "gen": c}
        results["ceiling_latency"] = {}

    for workers in ([1], [1, 0]):
        name = f"sluice_{len(workers)}w"
        log(f"Sluice FULLNAT UDP over memif, {len(workers)} worker(s)")
        with Sluice(servers, "sb-lb", workers=workers) as s:
            r, after = gen_scraped(s, "fullnat", client, backend)
            # Packets Sluice forwarded: every request and every reply the generator saw.
            packets = 2 * r["received"]
            busy = max((metric(after, "sluice_worker_busy_ratio", worker=w) for w in range(len(workers))), default=0)
            steering = [n for n in after if n.startswith("sluice_port_steering") and 'interface="lan"' in n]
            results[name] = {
                "mpps_each_way": mpps(r["rx_pps"]),
                "ratio_to_ceiling": r["rx_pps"] / max(results["ceiling"]["gen"]["rx_pps"], 1),
                "bad_replies": r["bad"],
                "worker_busy_ratio": busy,
                "cycles_per_packet": busy * hz * len(workers) * r["duration_s"] / max(packets, 1),
                "steering": re.sub(r'.*mode="([a-z]+)".*', r"\1", steering[0]) if steering else "?",
                "gen": r,
            }
            if len(workers) == 1:
                maximum = r["rx_pps"]
                lat = {}
                for share in (10, 50, 90):
                    rate = int(maximum * share / 100)
                    lat[share] = gen("fullnat", client, backend, rate=str(rate), duration=min(SECONDS, 5))["latency_ns"]
                results["sluice_latency"] = lat

    log("new sessions: every packet a new flow; TCP handshake, request, response, close (1 s timeouts, 64 local IPs)")
    with Sluice(servers, "sb-lb", capacity=4 << 20, local_ips=64, short_timeouts=True) as s:
        r, m = gen_scraped(s, "new-flows", client, backend)
        results["new_sessions"] = {"sessions_per_s": r.get("sessions_per_s") or r["rx_pps"],
                                   "created": metric(m, "sluice_sessions_created_total", service="udp"), "gen": r}
        r = gen("tcp", client, backend, extra=("--vip", "198.18.0.10:80"))
        results["tcp"] = {"connections_per_s": r.get("connections_per_s", 0), "lost": r["lost"], "gen": r}

    log("ceiling latency at the same rates")
    with testpmd():
        maximum = results["sluice_1w"]["gen"]["rx_pps"]
        for share in (10, 50, 90):
            rate = int(maximum * share / 100)
            results["ceiling_latency"][share] = gen("ceiling", client, backend, rate=str(rate), duration=min(SECONDS, 5))["latency_ns"]


def veth_path():
    """sb-gen (gc, gb: the generator on af_xdp) <-> sb-peer (pw, pl: the forwarder under test)."""
    for ns in ("sb-gen", "sb-peer"):
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "set", "lo", "up", ns=ns)
    sh("ip", "link", "add", "gc", "netns", "sb-gen", "type", "veth", "peer", "name", "pw", "netns", "sb-peer")
    sh("ip", "link", "add", "gb", "netns", "sb-gen", "type", "veth", "peer", "name", "pl", "netns", "sb-peer")
    for ns, devs in (("sb-gen", ("gc", "gb")), ("sb-peer", ("pw", "pl"))):
        for d in devs:
            sh("ethtool", "-K", d, "tx", "off", ns=ns, check=False, capture=True)
            sh("sysctl", "-qw", f"net.ipv6.conf.{d}.disable_ipv6=1", ns=ns)
            sh("ip", "link", "set", d, "up", ns=ns)
    # The forwarder's receive work on CPU 1 (veth delivers on the sender's CPU otherwise).
    for d in ("pw", "pl"):
        sh("sh", "-c", f"echo 2 > /sys/class/net/{d}/queues/rx-0/rps_cpus", ns="sb-peer", check=False)


def kernel_addresses():
    sh("ip", "addr", "add", "198.18.0.1/24", "dev", "pw", ns="sb-peer")
    sh("ip", "addr", "add", "198.18.0.10/32", "dev", "pw", ns="sb-peer")
    sh("ip", "addr", "add", "198.18.1.1/24", "dev", "pl", ns="sb-peer")
    sh("ip", "addr", "add", "198.18.1.100/32", "dev", "pl", ns="sb-peer")
    sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns="sb-peer")


def busy_cycles_per_packet(run, packets, cpu=1):
    """Runs `run()`, returns its result and the CPU's busy cycles per packet meanwhile."""
    b0, t0 = cpu_busy(cpu)
    result = run()
    b1, t1 = cpu_busy(cpu)
    share = (b1 - b0) / max(t1 - t0, 1)
    return result, share, share * tsc_hz() * result["duration_s"] / max(packets(result), 1)


RATES = [2_000_000, 1_400_000, 1_000_000, 700_000, 500_000, 350_000, 250_000, 175_000, 125_000, 90_000, 64_000, 45_000, 32_000, 16_000]


def idle_loop_cycles(sluice, seconds=2):
    """What one poll loop of worker 0 costs with no traffic: TSC cycles per loop."""
    loops = lambda: metric(sluice.metrics(), "sluice_worker_loops_total", worker=0)
    l0, t0 = loops(), time.time()
    time.sleep(seconds)
    l1, t1 = loops(), time.time()
    return tsc_hz() / max((l1 - l0) / (t1 - t0), 1)


def loss_free(run, refine=3):
    """RFC 2544 style: the highest offered rate that loses under 0.5 %: the first of RATES that
    does, then `refine` bisections between it and the rate above it that did not.

    Flooding a kernel forwarder beyond what it can take makes it livelock in receive processing
    and measures nothing useful; the loss-free rate compares forwarders fairly."""
    ok = lambda r: r["sent"] and r["lost"] / r["sent"] < 0.005
    last, failed = None, None
    for rate in RATES:
        r = run(str(rate))
        last = r
        if not ok(r):
            failed = rate
            continue
        best, low, high = r, rate, failed
        for _ in range(refine if high else 0):
            mid = (low + high) // 2
            r = run(str(mid))
            if ok(r):
                best, low = r, mid
            else:
                high = mid
        return best
    return last


# The af_xdp options Sluice's row uses (docs/operations.md, "af_xdp ports"): busy_budget=0 turns
# the PMD's preferred busy polling off, which otherwise makes every empty poll a system call.
AF_XDP_OPTIONS = os.environ.get("BENCH_AF_XDP_OPTIONS", "start_queue=0,queue_count=1,busy_budget=0")
# The PMD's defaults, measured beside it (BENCH_AF_XDP_DEFAULTS=0 skips that row).
AF_XDP_DEFAULTS = "start_queue=0,queue_count=1"


def run_peers(results, only=None):
    """The veth path; `only`: the names of the rows to run (all when None)."""
    client = f"net_af_xdp0,iface=gc,{AF_XDP_DEFAULTS}"
    backend = f"net_af_xdp1,iface=gb,{AF_XDP_DEFAULTS}"
    forwarded = lambda r: 2 * r["received"]
    peers = {}
    wanted = lambda name: only is None or name in only

    if wanted("testpmd_af_xdp"):
        log("peer path: dpdk-testpmd io-forward on af_xdp (the ceiling of this path)")
        veth_path()
        with testpmd([f"net_af_xdp0,iface=pw,{AF_XDP_OPTIONS}", f"net_af_xdp1,iface=pl,{AF_XDP_OPTIONS}"], ns="sb-peer"):
            r = loss_free(lambda rate: gen("ceiling", client, backend, rate=rate, duration=3, ns="sb-gen"))
            peers["testpmd_af_xdp"] = {"mpps_each_way": mpps(r["rx_pps"]), "options": AF_XDP_OPTIONS, "gen": r}
        cleanup_peer()

    variants = [("sluice_af_xdp", AF_XDP_OPTIONS)]
    if os.environ.get("BENCH_AF_XDP_DEFAULTS", "1") != "0" and AF_XDP_OPTIONS != AF_XDP_DEFAULTS:
        variants.append(("sluice_af_xdp_defaults", AF_XDP_DEFAULTS))
    for name, options in variants:
        if not wanted(name):
            continue
        log(f"peer path: Sluice on af_xdp ({options})")
        veth_path()
        ports = [f"net_af_xdp0,iface=pw,{options}", f"net_af_xdp1,iface=pl,{options}"]
        with Sluice(ports, "sb-peer") as s:
            idle = idle_loop_cycles(s)
            r = loss_free(lambda rate: gen("fullnat", client, backend, rate=rate, duration=3, ns="sb-gen"))
            m = s.metrics()
            busy = metric(m, "sluice_worker_busy_ratio", worker=0)
            peers[name] = {"mpps_each_way": mpps(r["rx_pps"]), "worker_busy_ratio": busy, "options": options,
                           "cycles_per_packet": busy * tsc_hz() * r["duration_s"] / max(forwarded(r), 1),
                           "cycles_per_idle_loop": idle, "gen": r}
        cleanup_peer()
    if wanted("nftables"):
        log("peer path: the kernel doing FULLNAT with nftables (DNAT + SNAT, numgen round robin)")
        veth_path()
        kernel_addresses()
        rules = """
    table ip sluice_bench {
      chain pre {
        type nat hook prerouting priority dstnat;
        ip daddr 198.18.0.10 udp dport 53 dnat to numgen inc mod 2 map { 0 : 198.18.1.2, 1 : 198.18.1.3 };
      }
      chain post {
        type nat hook postrouting priority srcnat;
        oifname "pl" snat to 198.18.1.100;
      }
    }
    """
        (RUN / "nft.conf").write_text(rules)
        sh("nft", "-f", RUN / "nft.conf", ns="sb-peer")
        r, share, cpp = busy_cycles_per_packet(lambda: loss_free(lambda rate: gen("fullnat", client, backend, rate=rate, duration=3, ns="sb-gen")), forwarded)
        peers["nftables"] = {"mpps_each_way": mpps(r["rx_pps"]), "cpu_busy": share, "cycles_per_packet": cpp, "gen": r}
        cleanup_peer()

    if wanted("nginx"):
        log("peer path: nginx UDP stream proxy")
        veth_path()
        kernel_addresses()
        conf = RUN / "nginx.conf"
        conf.write_text(f"""
    load_module /usr/lib/nginx/modules/ngx_stream_module.so;
    worker_processes 1;
    worker_cpu_affinity 10;
    pid {RUN}/nginx.pid;
    error_log {RUN}/nginx-error.log;
    daemon off;
    events {{ worker_connections 65536; }}
    stream {{
      upstream backends {{ server 198.18.1.2:53; server 198.18.1.3:53; }}
      server {{ listen 198.18.0.10:53 udp reuseport; proxy_pass backends; proxy_responses 1; proxy_timeout 2s; }}
    }}
    """)
        with Proc(["nginx", "-c", conf], ns="sb-peer", log_path=RUN / "nginx.log") as n:
            time.sleep(1)  # nginx says nothing when ready; its socket is polled below instead
            deadline = time.time() + 10
            while "198.18.0.10:53" not in sh("ss", "-lun", ns="sb-peer", capture=True) and time.time() < deadline:
                time.sleep(0.1)
            r, share, cpp = busy_cycles_per_packet(lambda: loss_free(lambda rate: gen("fullnat", client, backend, rate=rate, duration=3, ns="sb-gen")), forwarded)
            peers["nginx"] = {"mpps_each_way": mpps(r["rx_pps"]), "cpu_busy": share, "cycles_per_packet": cpp, "gen": r}
        cleanup_peer()
    finish_peers(results, peers)


def finish_peers(results, peers):
    """Sluice's rate as a multiple of each peer's (for testpmd: the share of this path's ceiling)."""
    s = peers.get("sluice_af_xdp", {}).get("mpps_each_way")
    if s is not None:
        for k in ("testpmd_af_xdp", "sluice_af_xdp_defaults", "nftables", "nginx"):
            if k in peers:
                peers[k]["sluice_ratio"] = s / max(peers[k]["mpps_each_way"], 1e-9)
    results["peers"] = peers


def cleanup_peer():
    for ns in ("sb-gen", "sb-peer"):
        for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def run_memory(results):
    log("memory per session and the table at 10 million sessions (cargo bench)")
    env = dict(os.environ, SLUICE_BENCH_10M="1")
    out = subprocess.run(["cargo", "bench", "--locked", "-p", "dataplane", "--bench", "fullnat"],
                         cwd=ROOT, env=env, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        m = re.match(r"(.+?)\s{2,}([\d.]+)$", line.strip())
        if m:
            rows[m.group(1)] = float(m.group(2))
    results["per_packet_ns"] = rows


PEER_ROWS = (("testpmd_af_xdp", "dpdk-testpmd io-forward on af_xdp (veth)"), ("sluice_af_xdp", "Sluice on af_xdp (veth)"),
             ("sluice_af_xdp_defaults", "Sluice on af_xdp, PMD defaults (veth)"),
             ("nftables", "kernel nftables FULLNAT (veth)"), ("nginx", "nginx UDP proxy (veth)"))


def table(results):
    rows = []
    c = results["ceiling"]
    rows.append(("dpdk-testpmd io-forward ceiling (memif)", f"{c['mpps_each_way']:.2f} Mpps each way", "1.00", ""))
    for name, label in (("sluice_1w", "Sluice FULLNAT UDP, 1 worker (memif)"), ("sluice_2w", "Sluice FULLNAT UDP, 2 workers (memif)")):
        s = results.get(name)
        if s:
            rows.append((label, f"{s['mpps_each_way']:.2f} Mpps each way", f"{s['ratio_to_ceiling']:.2f}",
                         f"{s['cycles_per_packet']:.0f} cyc/pkt, busy {s['worker_busy_ratio']:.2f}, steering {s['steering']}"))
    if "new_sessions" in results:
        rows.append(("new sessions, every packet a new flow", f"{results['new_sessions']['sessions_per_s'] / 1e6:.2f} M sessions/s", "", "1 worker"))
    if "tcp" in results:
        rows.append(("TCP handshake+request+response+close", f"{results['tcp']['connections_per_s'] / 1e3:.1f} k conn/s", "", "1 worker"))
    for share, lat in results.get("sluice_latency", {}).items():
        base = results.get("ceiling_latency", {}).get(share, {"p50": 0, "p99": 0})
        rows.append((f"latency at {share}% of Sluice's max", f"p50 {lat['p50'] / 1e3:.1f} us, p99 {lat['p99'] / 1e3:.1f} us",
                     "", f"added vs ceiling: p50 {(lat['p50'] - base['p50']) / 1e3:+.1f} us, p99 {(lat['p99'] - base['p99']) / 1e3:+.1f} us"))
    for name, label in PEER_ROWS:
        p = results.get("peers", {}).get(name)
        if p:
            ratio = f"Sluice x{p['sluice_ratio']:.2f}" if "sluice_ratio" in p else ""
            notes = f"{p['cycles_per_packet']:.0f} cyc/pkt" if "cycles_per_packet" in p else ""
            if "cycles_per_idle_loop" in p:
                notes = f"{notes}, {p['cycles_per_idle_loop']:.0f} cyc/idle loop"
            if "options" in p:
                notes = f"{notes} {p['options']}".strip()
            rows.append((label, f"{p['mpps_each_way']:.3f} Mpps each way", ratio, notes))
    for k, v in results.get("per_packet_ns", {}).items():
        rows.append((k, f"{v:.1f}", "", "cargo bench"))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'run':<{width}}  {'result':<34} {'ratio':<12} notes"]
    lines += [f"{a:<{width}}  {b:<34} {c:<12} {d}" for a, b, c, d in rows]
    return "\n".join(lines)


def plot(results, png):
    bars = [("testpmd\\nceiling", results["ceiling"]["mpps_each_way"])]
    for name, label in (("sluice_1w", "Sluice\\nmemif 1w"), ("sluice_2w", "Sluice\\nmemif 2w")):
        if name in results:
            bars.append((label, results[name]["mpps_each_way"]))
    for name, label in (("sluice_af_xdp", "Sluice\\naf_xdp"), ("nftables", "nftables\\nFULLNAT"), ("nginx", "nginx\\nUDP")):
        if name in results.get("peers", {}):
            bars.append((label, results["peers"][name]["mpps_each_way"]))
    data = Path(png).with_suffix(".dat")
    data.write_text("".join(f'{i} "{label}" {value}\n' for i, (label, value) in enumerate(bars)))
    script = f"""
set terminal pngcairo size 900,520 font ",10"
set bmargin 5
set termoption noenhanced
set output "{png}"
set title "64-byte UDP, Mpps each way (one run, this machine)"
set style fill solid 0.8
set boxwidth 0.6
set yrange [0:*]
set ylabel "Mpps"
set grid ytics
plot "{data}" using 1:3:xtic(2) with boxes notitle, "" using 1:3:(sprintf("%.2f", $3)) with labels offset 0,1 notitle
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=False)
    data.unlink(missing_ok=True)


def history_line(results):
    """The run's headline figures, one JSON line of docs/bench/history.jsonl: every full run adds
    one, so that a figure can be set beside the same figure of earlier runs and commits."""
    def get(*path):
        v = results
        for k in path:
            if not isinstance(v, dict) or k not in v:
                return None
            v = v[k]
        return round(v, 4) if isinstance(v, float) else v
    ns = results.get("per_packet_ns", {})
    lat = results.get("sluice_latency", {})
    at_half = lat.get(50) or lat.get("50") or {}
    return {
        "date": results.get("date"), "commit": results.get("commit"), "flows": results.get("flows"),
        "ceiling_mpps": get("ceiling", "mpps_each_way"), "sluice_1w_mpps": get("sluice_1w", "mpps_each_way"),
        "ratio_1w": get("sluice_1w", "ratio_to_ceiling"), "cycles_per_packet": get("sluice_1w", "cycles_per_packet"),
        "ratio_2w": get("sluice_2w", "ratio_to_ceiling"), "new_sessions_per_s": get("new_sessions", "sessions_per_s"),
        "tcp_conn_per_s": get("tcp", "connections_per_s"), "p99_50pct_ns": at_half.get("p99"),
        "af_xdp_mpps": get("peers", "sluice_af_xdp", "mpps_each_way"),
        "af_xdp_to_testpmd": get("peers", "testpmd_af_xdp", "sluice_ratio"),
        "af_xdp_to_nftables": get("peers", "nftables", "sluice_ratio"),
        "ns_fwd_1k": ns.get("established forward, 1000 flows"), "ns_fwd_1m_bursts": ns.get("forward in bursts of 32, 1000000 flows"),
        "bytes_per_session": ns.get("memory per session (bytes)"),
    }


def report(results, history=True):
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    if history:
        with open(OUT / "history.jsonl", "a") as f:
            f.write(json.dumps(history_line(results)) + "\n")
    plot(results, OUT / "latest.png")
    text = table(results)
    (OUT / "latest.txt").write_text(text + "\n")
    print(text)


def memif_path():
    """A fresh start: the generator's memif ports (client, backend), the forwarder's (servers),
    and Sluice's namespace sb-lb."""
    cleanup()
    RUN.mkdir(parents=True)
    sh("ip", "netns", "add", "sb-lb")
    sh("ip", "link", "set", "lo", "up", ns="sb-lb")
    return memif(0, "client"), memif(1, "client"), [memif(0, "server"), memif(1, "server")]


def quick():
    """`--quick`: the ceiling and Sluice with one worker only, at BENCH_FLOWS flows; one line of
    JSON (for before-and-after comparisons: alternate SLUICE_BIN between runs)."""
    results = {}
    try:
        client, backend, servers = memif_path()
        with testpmd():
            ceiling = gen("ceiling", client, backend)["rx_pps"]
        with Sluice(servers, "sb-lb"):
            r = gen("fullnat", client, backend)
        results = {"flows": FLOWS, "sluice": str(SLUICE), "ceiling_mpps": mpps(ceiling),
                   "sluice_mpps": mpps(r["rx_pps"]), "ratio": r["rx_pps"] / max(ceiling, 1), "bad": r["bad"]}
    finally:
        cleanup()
    print(json.dumps(results))


def perf_shares(data):
    """Samples of a `perf record` by shared object and by symbol, in percent."""
    out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso,symbol", "--stdio"],
                         capture_output=True, text=True).stdout
    by_dso, by_symbol = {}, {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(\S+)", line)
        if m:
            share, dso, symbol = float(m.group(1)), m.group(2), m.group(3)
            by_dso[dso] = by_dso.get(dso, 0) + share
            by_symbol[symbol] = by_symbol.get(symbol, 0) + share
    return by_dso, by_symbol


def profile():
    """`--profile`: Sluice with one worker at BENCH_FLOWS flows over memif, `perf record` on the
    worker's CPU meanwhile; one line of JSON: the share of samples in Sluice's own code against
    the memif PMD's (`own_to_pmd`), and the top symbols. The PMD's cost per packet is the same
    for any forwarder on this path, so this ratio moves with Sluice's own cost per packet and
    hardly with the machine's noise, unlike rates and ratios to the ceiling."""
    if not shutil.which("perf"):
        sh("apt-get", "install", "-y", "-qq", "--no-install-recommends", "linux-perf", capture=True)
    results = {}
    try:
        client, backend, servers = memif_path()
        data = RUN / "perf.data"
        with Sluice(servers, "sb-lb"):
            record = subprocess.Popen(["sh", "-c", f"sleep 2; exec perf record -q -C 1 -o {data} -- sleep {max(SECONDS - 4, 2)}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            r = gen("fullnat", client, backend)
            record.wait(timeout=60)
        by_dso, by_symbol = perf_shares(data)
        own = sum(v for k, v in by_dso.items() if k == SLUICE.name)
        pmd = sum(v for k, v in by_dso.items() if "memif" in k)
        top = sorted(((v, k) for k, v in by_symbol.items() if not k.startswith("0x")), reverse=True)[:10]
        results = {"flows": FLOWS, "sluice": str(SLUICE), "sluice_mpps": mpps(r["rx_pps"]), "own_share": own,
                   "pmd_share": pmd, "own_to_pmd": own / max(pmd, 1e-9), "top": [[k, round(v, 1)] for v, k in top]}
    finally:
        cleanup()
    print(json.dumps(results))


def peers_only():
    """`--peers [NAME,...]`: the veth path only (all rows, or the named ones: testpmd_af_xdp,
    sluice_af_xdp, sluice_af_xdp_defaults, nftables, nginx); one line of JSON, no report."""
    at = sys.argv.index("--peers")
    only = set(sys.argv[at + 1].split(",")) if len(sys.argv) > at + 1 else None
    cleanup()
    RUN.mkdir(parents=True)
    results = {}
    try:
        run_peers(results, only)
    finally:
        cleanup()
    brief = {k: {f: v for f, v in p.items() if f != "gen"} for k, p in results.get("peers", {}).items()}
    print(json.dumps(brief))


def main():
    if "--quick" in sys.argv:
        quick()
        return
    if "--peers" in sys.argv:
        peers_only()
        return
    if "--profile" in sys.argv:
        profile()
        return
    if "--report" in sys.argv:
        # Table and plot again from the last run's JSON.
        report(json.loads((OUT / "latest.json").read_text()), history=False)
        return
    if os.geteuid() != 0:
        sys.exit("bench: run as root")
    cleanup()
    RUN.mkdir(parents=True)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "commit": commit, "seconds_per_run": SECONDS, "flows": FLOWS,
               "cpu": re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text()).group(1)}
    try:
        run_memif(results)
        run_peers(results)
        run_memory(results)
    finally:
        cleanup()
    report(results)


if __name__ == "__main__":
    main()
