"""The benchmark's tools (scripts/bench.py runs the measurements with them): processes stopped
by PID, namespaces, the generator, Sluice and dpdk-testpmd, metrics, loss-free rates, perf.
Only 198.18.0.0/15 is used, in namespaces made here and always removed."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent


RUN = Path("/run/sluice-bench")


# Where a full run writes its table, JSON, plot and history line (BENCH_OUT: elsewhere, for trials).
OUT = Path(os.environ["BENCH_OUT"]) if os.environ.get("BENCH_OUT") else ROOT / "docs" / "bench"


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
        if self.p.poll() is not None and self.p.returncode != 0:
            log(f"{Path(self.log_path).stem} had already ended (exit {self.p.returncode}; -11 is the memif fault, see gen_scraped)")
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


def gen(mode, client_vdev, backend_vdev, rate="max", duration=SECONDS, ns=None, extra=(), flows=None):
    # Each client address gives 64,512 source ports: enough addresses for the flows.
    flows = flows or FLOWS
    addresses = max(8, -(-flows // 64512))
    flows = ["--flows", flows, "--client-ips", addresses] if mode in ("fullnat", "ceiling") else []
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


class Isolated:
    """CPU `cpu` kept for the forwarder under test while the block runs, as an operator isolates
    a worker's core (docs/operations.md, "Running it"): every task the kernel lets
    move (processes, and kernel threads not bound to a CPU such as rcu_preempt, kdamond and
    khugepaged), every interrupt that can move, and unbound workqueues go to the other CPUs;
    afterwards each gets back what it had. Without this, on this VM the RCU grace-period thread
    alone preempted the worker about 80 times a second, for up to 3.7 ms. The forwarders are
    started inside the block, so they pin themselves as they always do."""

    def __init__(self, cpu=1):
        self.cpu = cpu
        self.saved = []  # (sysfs or procfs file, what it held)
        self.tasks = {}  # pid: the CPUs it had

    def _write(self, path, value):
        try:
            old = Path(path).read_text().strip()
            Path(path).write_text(value)
            self.saved.append((path, old))
        except OSError:
            pass  # managed interrupts and the like stay where they are

    def __enter__(self):
        others = [c for c in range(os.cpu_count() or 1) if c != self.cpu]
        if not others:
            return self
        mask = format(sum(1 << c for c in others), "x")
        self._write("/sys/devices/virtual/workqueue/cpumask", mask)
        for irq in Path("/proc/irq").glob("[0-9]*"):
            self._write(irq / "smp_affinity", mask)
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                old = os.sched_getaffinity(int(pid))
                if self.cpu in old and len(old) > 1:
                    os.sched_setaffinity(int(pid), set(others))
                    self.tasks[int(pid)] = old
            except OSError:
                pass  # gone, or bound to its CPU (per-CPU kernel threads)
        return self

    def __exit__(self, *exc):
        for pid, old in self.tasks.items():
            try:
                os.sched_setaffinity(pid, old)
            except OSError:
                pass
        for path, old in reversed(self.saved):
            try:
                Path(path).write_text(old)
            except OSError:
                pass


def clear_memif_sockets(vdevs):
    """Removes the socket files the memif servers among `vdevs` are about to create: a process
    that crashed as its memif peer left (see `gen_scraped`) leaves them behind, and the next
    server on them would fail with "Address already in use" and end the whole run."""
    for v in vdevs:
        opts = dict(o.split("=", 1) for o in v.split(",")[1:] if "=" in o)
        if opts.get("role") == "server" and "socket" in opts:
            Path(opts["socket"]).unlink(missing_ok=True)


def memif(name, role):
    # A socket file, not an abstract one: abstract sockets live in one network namespace.
    return f"net_memif{name},role={role},socket={RUN}/{name}.sock,socket-abstract=no"


def sluice_config(ports, workers=(1,), capacity=None, local_ips=None, short_timeouts=False, synproxy=False, flows=None):
    # Room for every flow: sessions, and local ports (64,512 a local IP, each worker its own
    # share of the IPs); otherwise established flows would evict each other's sessions.
    flows = flows or FLOWS
    capacity = capacity or max(1 << 20, 2 * flows)
    local_ips = local_ips or max(4, len(workers) * (flows // 60000 + 1))

    def service(protocol, port, third_octet):
        """A service on the VIP with two backends and `local_ips` local IPs from 198.18.`third_octet`."""
        locals_ = ", ".join(f'"198.18.{third_octet + i // 200}.{i % 200 + 10}"' for i in range(local_ips))
        backends = "".join(f'[[service.backend]]\naddress = "198.18.1.{b}:{port}"\n' for b in (2, 3))
        guard = "synproxy = true\n" if synproxy and protocol == "tcp" else ""
        return (f'[[service]]\nname = "{protocol}"\nvip = "198.18.0.10:{port}"\nprotocol = "{protocol}"\n'
                f'{guard}local_ips = [{locals_}]\n{backends}')

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
{service("udp", 53, 2)}{service("tcp", 80, 4)}"""


class Sluice(Proc):
    def __init__(self, ports, ns, **kw):
        cfg = RUN / "sluice.toml"
        cfg.write_text(sluice_config(ports, **kw))
        clear_memif_sockets(ports)
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
    clear_memif_sockets(vdevs)
    args = ["dpdk-testpmd", "--lcores", "0@1,1@1", "--main-lcore", "0", "--no-pci", "--in-memory", "--no-telemetry",
            *[f"--vdev={v}" for v in vdevs], "--",
            "--forward-mode=io", "--auto-start", "--nb-cores=1", "--no-lsc-interrupt"]
    p = Proc(args, ns=ns, log_path=RUN / "testpmd.log")
    p.wait_for("Checking link statuses", timeout=60)
    return p


def preemptions(proc, cpu=1):
    """How often the threads `proc` runs on `cpu` alone have been preempted (the kernel's
    nonvoluntary context switches): each one stops the forwarder for as long as the other task
    runs, which on this shared VM sets the latency's tail, for any forwarder."""
    total = 0
    for task in Path(f"/proc/{proc.p.pid}/task").iterdir():
        try:
            fields = dict(l.split(":", 1) for l in (task / "status").read_text().splitlines() if ":" in l)
        except OSError:
            continue
        if fields.get("Cpus_allowed_list", "").strip() == str(cpu):
            total += int(fields["nonvoluntary_ctxt_switches"])
    return total


# What `cpu_stalls` runs: a loop that reads the clock and nothing else, pinned to one CPU.
STALL_METER = """
import json, os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
seconds = float(sys.argv[2])
ns = time.perf_counter_ns
end = ns() + int(seconds * 1e9)
prev = ns(); over16 = over64 = stalled = longest = 0
while prev < end:
    t = ns(); gap = t - prev; prev = t
    if gap > 16000:
        over16 += 1; stalled += gap; longest = max(longest, gap)
        over64 += gap > 64000
print(json.dumps({"over_16us_per_s": over16 / seconds, "over_64us_per_s": over64 / seconds,
                  "stalled_share": stalled / (seconds * 1e9), "longest_us": longest / 1e3}))
"""


def cpu_stalls(cpu=1, seconds=3):
    """How often a loop that only reads the clock on `cpu` finds more than 16 us gone since its
    last read: on the forwarders' isolated CPU, the machine's own stalls (interrupts, the
    hypervisor), which any forwarder there pays in latency, Sluice's worker or testpmd; on a
    shared CPU, those and the other tasks' turns.
    The loop is Python's, so its own pauses count too: an upper bound, close to what the same
    loop in C sees here (2026-11-29: 620 and 1,230 a second in two runs in C, 815 in Python)."""
    out = subprocess.run([sys.executable, "-c", STALL_METER, str(cpu), str(seconds)], capture_output=True, text=True,
                         timeout=seconds + 30)
    return json.loads(out.stdout)


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


def memif_path():
    """A fresh start: the generator's memif ports (client, backend), the forwarder's (servers),
    and Sluice's namespace sb-lb."""
    cleanup()
    RUN.mkdir(parents=True)
    sh("ip", "netns", "add", "sb-lb")
    sh("ip", "link", "set", "lo", "up", ns="sb-lb")
    return memif(0, "client"), memif(1, "client"), [memif(0, "server"), memif(1, "server")]


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
