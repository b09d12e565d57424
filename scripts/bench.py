#!/usr/bin/env python3
"""Sluice's benchmark suite, driven by scripts/bench (which builds first).

Everything runs on this machine in one go, so that figures are compared within one run (the
headline ratios in BENCH_ROUNDS alternating rounds, reported as medians with their range):
  1. the ceiling: dpdk-testpmd io-forwarding between two memif ports, fed by sluice-gen;
  2. Sluice over the same memif ports, 1 worker (and 2), UDP FULLNAT both ways, established
     flows; new sessions per second; synthetic TCP connections per second; added latency at
     10/50/90 % of Sluice's own maximum;
  3. the peers on one veth path, the same generator on af_xdp: dpdk-testpmd on af_xdp, Sluice
     on af_xdp (its options and the PMD's defaults), the kernel doing FULLNAT with nftables
     (DNAT + SNAT, numgen round robin), nginx's UDP stream proxy;
  4. memory per session and the session table at 10 million sessions (cargo bench).
Cores: the generator on CPU 0, the forwarder under test on CPU 1. Only 198.18.0.0/15 is used,
in namespaces made here and always removed; every process is stopped by its PID.
Modes: --quick, --peers, --profile, --report (docs/benchmarks.md). The tools (processes, the
generator, Sluice, testpmd, loss-free rates) are in scripts/benchkit.py.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchkit import (
    FLOWS,
    OUT,
    ROOT,
    RUN,
    SECONDS,
    SLUICE,
    Isolated,
    Proc,
    Sluice,
    busy_cycles_per_packet,
    cleanup,
    cpu_busy,
    cpu_stalls,
    gen,
    gen_scraped,
    idle_loop_cycles,
    log,
    loss_free,
    memif,
    memif_path,
    metric,
    mpps,
    perf_shares,
    preemptions,
    sh,
    testpmd,
    tsc_hz,
)


def run_memif(results):
    client, backend = memif(0, "client"), memif(1, "client")
    servers = [memif(0, "server"), memif(1, "server")]
    hz = tsc_hz()
    # Sluice runs in a namespace of its own: its kernel interfaces are called wan and lan.
    sh("ip", "netns", "add", "sb-lb")
    sh("ip", "link", "set", "lo", "up", ns="sb-lb")

    log(f"headline: {ROUNDS} alternating rounds of the ceiling (dpdk-testpmd io forwarding between the memif ports), "
        f"Sluice at {FLOWS} flows, new sessions, Sluice at {MANY_FLOWS} flows, the ceiling at {MANY_FLOWS}")
    rounds = [one_round(client, backend, servers, hz) for _ in range(ROUNDS)]
    results["rounds"] = rounds
    results["headline"] = {key: spread([r[key] for r in rounds]) for key in ("ratio", "ratio_many", "new_to_ceiling")}
    # The round whose ratio is the median stands for the rest (its ceiling and its run).
    middle = sorted(rounds, key=lambda r: r["ratio"])[len(rounds) // 2]
    results["ceiling"] = middle["ceiling"]
    results["sluice_1w"] = middle["sluice_1w"]
    results["new_sessions"] = middle["new_sessions"]

    log("Sluice FULLNAT UDP over memif, 2 workers; latency at 10/50/90 % of Sluice's rate just before, "
        "the ceiling's at the same rates just after")
    with Sluice(servers, "sb-lb", workers=[1, 0]) as s:
        results["sluice_2w"] = sluice_run(s, client, backend, hz, 2, results["ceiling"]["gen"]["rx_pps"])
    results["cpu_stalls"] = cpu_stalls(1)
    results["cpu_stalls_generator"] = cpu_stalls(0)
    # Sluice's maximum measured again right before its latency runs, and the ceiling's at the same
    # rates right after them: a maximum from another phase of the path (the rounds' rates differ by
    # half between phases) would put "50 %" anywhere from a quarter load to an overload.
    with Sluice(servers, "sb-lb") as s:
        r, m = gen_scraped(s, "fullnat", client, backend)
        results["latency_reference"] = {"mpps_each_way": mpps(r["rx_pps"]),
                                        "worker_busy_ratio": metric(m, "sluice_worker_busy_ratio", worker=0)}
        results["sluice_latency"] = latencies(s, "fullnat", client, backend, r["rx_pps"])
    with testpmd() as t:
        results["ceiling_latency"] = latencies(t, "ceiling", client, backend, r["rx_pps"])

    log("TCP handshake, request, response, close (1 s timeouts, 64 local IPs)")
    with Sluice(servers, "sb-lb", capacity=4 << 20, local_ips=64, short_timeouts=True) as s:
        r = gen("tcp", client, backend, extra=("--vip", "198.18.0.10:80"))
        results["tcp"] = {"connections_per_s": r.get("connections_per_s", 0), "lost": r["lost"], "gen": r}

    log("SYN proxy: SYNs answered with cookies (every SYN a new tuple, nothing after); TCP connections through it")
    with Sluice(servers, "sb-lb", capacity=4 << 20, local_ips=64, short_timeouts=True, synproxy=True) as s:
        r, m = gen_scraped(s, "syn", client, backend, extra=("--vip", "198.18.0.10:80"))
        results["synproxy"] = {"syn_acks_per_s": r.get("syn_acks_per_s") or r["rx_pps"],
                               "sessions_created": metric(m, "sluice_sessions_created_total", service="tcp"), "gen": r}
        r = gen("tcp", client, backend, extra=("--vip", "198.18.0.10:80"))
        results["synproxy_tcp"] = {"connections_per_s": r.get("connections_per_s", 0), "lost": r["lost"], "gen": r}


# Rounds of the headline figures (BENCH_ROUNDS, at least 1): the median and the spread are
# reported, never one run (the ceiling here moves by 2x between runs minutes apart).
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))
# The flows of the second headline ratio.
MANY_FLOWS = int(os.environ.get("BENCH_MANY_FLOWS", "1000000"))


def one_round(client, backend, servers, hz):
    """One round of the headline figures, each Sluice run beside a ceiling measured just before
    or after it at the same number of flows: the ceiling at FLOWS flows, Sluice (1 worker) at
    FLOWS, new sessions (every packet a new flow, 1 s timeouts, 64 local IPs), Sluice at
    MANY_FLOWS, the ceiling at MANY_FLOWS."""
    with testpmd():
        c = gen("ceiling", client, backend)
    ceiling = {"mpps_each_way": mpps(c["rx_pps"]), "mpps_total": 2 * mpps(c["rx_pps"]), "gen": c}
    with Sluice(servers, "sb-lb") as s:
        one = sluice_run(s, client, backend, hz, 1, c["rx_pps"])
    with Sluice(servers, "sb-lb", capacity=4 << 20, local_ips=64, short_timeouts=True) as s:
        r, m = gen_scraped(s, "new-flows", client, backend)
        new = {"sessions_per_s": r.get("sessions_per_s") or r["rx_pps"],
               "created": metric(m, "sluice_sessions_created_total", service="udp"),
               "own_cycles_per_packet": cycles_split(m)["own_cycles_per_packet"], "gen": r}
    with Sluice(servers, "sb-lb", flows=MANY_FLOWS) as s:
        r, m = gen_scraped(s, "fullnat", client, backend, flows=MANY_FLOWS)
    with testpmd():
        c_many = gen("ceiling", client, backend, flows=MANY_FLOWS)
    many = {"mpps_each_way": mpps(r["rx_pps"]), "ceiling_mpps_each_way": mpps(c_many["rx_pps"]),
            "worker_busy_ratio": metric(m, "sluice_worker_busy_ratio", worker=0), **cycles_split(m), "gen": r}
    got = {"ceiling": ceiling, "sluice_1w": one, "new_sessions": new, "many_flows": many,
           "ratio": one["ratio_to_ceiling"], "ratio_many": r["rx_pps"] / max(c_many["rx_pps"], 1),
           "new_to_ceiling": new["sessions_per_s"] / max(c["rx_pps"], 1)}
    log(f"round: ceiling {ceiling['mpps_each_way']:.2f} Mpps, ratio {got['ratio']:.2f}; new sessions "
        f"{new['sessions_per_s'] / 1e6:.2f} M/s ({got['new_to_ceiling']:.2f} of the ceiling); "
        f"{MANY_FLOWS} flows {got['ratio_many']:.2f} of {many['ceiling_mpps_each_way']:.2f} Mpps")
    return got


def sluice_run(s, client, backend, hz, workers, ceiling_pps):
    """Sluice's established-flow run over memif with `workers` workers, against `ceiling_pps`."""
    r, after = gen_scraped(s, "fullnat", client, backend)
    # Packets Sluice forwarded: every request and every reply the generator saw.
    packets = 2 * r["received"]
    busy = max((metric(after, "sluice_worker_busy_ratio", worker=w) for w in range(workers)), default=0)
    steering = [n for n in after if n.startswith("sluice_port_steering") and 'interface="lan"' in n]
    return {
        "mpps_each_way": mpps(r["rx_pps"]),
        "ratio_to_ceiling": r["rx_pps"] / max(ceiling_pps, 1),
        "bad_replies": r["bad"],
        "worker_busy_ratio": busy,
        "cycles_per_packet": busy * hz * workers * r["duration_s"] / max(packets, 1),
        # Worker 0's busy cycles a packet, its own work and the drivers' (the last second).
        **cycles_split(after),
        "steering": re.sub(r'.*mode="([a-z]+)".*', r"\1", steering[0]) if steering else "?",
        "gen": r,
    }


def spread(values):
    """The median of `values`, their least and greatest, and how many."""
    ordered = sorted(values)
    n = len(ordered)
    median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return {"median": median, "min": ordered[0], "max": ordered[-1], "n": n}


def cycles_split(m, worker=0):
    """From Sluice's metrics: a worker's busy cycles per packet received over the last second,
    its own work and the time inside the drivers' receive and transmit calls."""
    part = lambda p: metric(m, "sluice_worker_cycles_per_packet", worker=worker, part=p)
    return {"own_cycles_per_packet": part("own"), "driver_cycles_per_packet": part("driver")}


def split_note(s):
    if "own_cycles_per_packet" not in s:
        return "split not measured"
    return f"own {s['own_cycles_per_packet']:.0f}, driver {s['driver_cycles_per_packet']:.0f}"


def latencies(forwarder, mode, client, backend, maximum):
    """Latency percentiles at 10, 50 and 90 % of `maximum`, each with the times the forwarder's
    thread was preempted meanwhile; for Sluice also the same percentiles of the time packets
    can have spent in its worker (`sluice_worker_packet_wait_seconds`), which the generator's
    own stalls do not reach."""
    out = {}
    for share in (10, 50, 90):
        before = preemptions(forwarder)
        scraped = forwarder.metrics() if isinstance(forwarder, Sluice) else None
        r = gen(mode, client, backend, rate=str(int(maximum * share / 100)), duration=min(SECONDS, 5))
        out[share] = {**r["latency_ns"], "preempted": preemptions(forwarder) - before}
        if scraped is not None:
            out[share]["in_worker_us"] = worker_wait(scraped, forwarder.metrics())
    return out


def worker_wait(before, after, worker=0):
    """p50 and p99 of `sluice_worker_packet_wait_seconds` between two scrapes, each as the upper
    bound in microseconds of the bucket it falls in (None past the last bound), and the packets
    counted."""
    def buckets(values):
        found = {}
        for name, v in values.items():
            m = re.match(r'sluice_worker_packet_wait_seconds_bucket\{worker="(\d+)",le="([^"]+)"\}', name)
            if m and int(m.group(1)) == worker:
                found[float(m.group(2))] = v
        return found
    b, a = buckets(before), buckets(after)
    counts = [(le, a[le] - b.get(le, 0)) for le in sorted(a)]
    total = counts[-1][1] if counts else 0

    def quantile(q):
        le = next((le for le, n in counts if total and n >= q * total), None)
        return None if le is None or le == float("inf") else round(le * 1e6, 3)
    return {"p50": quantile(0.5), "p99": quantile(0.99), "packets": total}


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

    def testpmd_on_af_xdp():
        log("peer path: dpdk-testpmd io-forward on af_xdp (the ceiling of this path)")
        veth_path()
        with testpmd([f"net_af_xdp0,iface=pw,{AF_XDP_OPTIONS}", f"net_af_xdp1,iface=pl,{AF_XDP_OPTIONS}"], ns="sb-peer"):
            r = loss_free(lambda rate: gen("ceiling", client, backend, rate=rate, duration=3, ns="sb-gen"))
        cleanup_peer()
        return {"mpps_each_way": mpps(r["rx_pps"]), "options": AF_XDP_OPTIONS, "gen": r}

    def sluice_on_af_xdp(options):
        log(f"peer path: Sluice on af_xdp ({options})")
        veth_path()
        ports = [f"net_af_xdp0,iface=pw,{options}", f"net_af_xdp1,iface=pl,{options}"]
        with Sluice(ports, "sb-peer") as s:
            idle = idle_loop_cycles(s)
            r = loss_free(lambda rate: gen("fullnat", client, backend, rate=rate, duration=3, ns="sb-gen"))
            m = s.metrics()
            busy = metric(m, "sluice_worker_busy_ratio", worker=0)
        cleanup_peer()
        return {"mpps_each_way": mpps(r["rx_pps"]), "worker_busy_ratio": busy, "options": options,
                "cycles_per_packet": busy * tsc_hz() * r["duration_s"] / max(forwarded(r), 1),
                "cycles_per_idle_loop": idle, "gen": r}

    # The headline af_xdp ratio: testpmd and Sluice alternating, ROUNDS times each (the loss-free
    # rate of this path moves by a third between runs); the median round stands for the rest.
    if wanted("testpmd_af_xdp") and wanted("sluice_af_xdp"):
        pairs = []
        for _ in range(ROUNDS):
            t = testpmd_on_af_xdp()
            pairs.append((t, sluice_on_af_xdp(AF_XDP_OPTIONS)))
        ratios = [sl["mpps_each_way"] / max(t["mpps_each_way"], 1e-9) for t, sl in pairs]
        peers["af_xdp_rounds"] = ratios
        t, sl = sorted(pairs, key=lambda p: p[1]["mpps_each_way"] / max(p[0]["mpps_each_way"], 1e-9))[len(pairs) // 2]
        peers["testpmd_af_xdp"], peers["sluice_af_xdp"] = t, sl
    elif wanted("testpmd_af_xdp"):
        peers["testpmd_af_xdp"] = testpmd_on_af_xdp()
    elif wanted("sluice_af_xdp"):
        peers["sluice_af_xdp"] = sluice_on_af_xdp(AF_XDP_OPTIONS)
    if os.environ.get("BENCH_AF_XDP_DEFAULTS", "1") != "0" and AF_XDP_OPTIONS != AF_XDP_DEFAULTS:
        if wanted("sluice_af_xdp_defaults"):
            peers["sluice_af_xdp_defaults"] = sluice_on_af_xdp(AF_XDP_DEFAULTS)
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
    if "af_xdp_rounds" in peers:
        results.setdefault("headline", {})["af_xdp_ratio"] = {**spread(peers["af_xdp_rounds"]), "values": peers["af_xdp_rounds"]}
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
    head = results.get("headline")
    if head:
        n = head["ratio"]["n"]
        ranged = lambda h: f"{h['median']:.2f}" + (f" ({h['min']:.2f}-{h['max']:.2f})" if h["n"] > 1 else "")
        each = lambda key, fmt: ", ".join(fmt(r[key]) for r in results["rounds"])
        rows.append((f"HEADLINE, median of {n} alternating rounds (min-max)", "", "", ""))
        rows.append((f"Sluice / ceiling, 1 worker, {results.get('flows')} flows", "", ranged(head["ratio"]),
                     "rounds: " + each("ratio", lambda v: f"{v:.2f}") + "; ceilings: "
                     + ", ".join(f"{r['ceiling']['mpps_each_way']:.2f}" for r in results["rounds"]) + " Mpps"))
        rows.append((f"Sluice / ceiling, 1 worker, {MANY_FLOWS} flows", "", ranged(head["ratio_many"]),
                     "rounds: " + each("ratio_many", lambda v: f"{v:.2f}") + "; Sluice: "
                     + ", ".join(f"{r['many_flows']['mpps_each_way']:.2f}" for r in results["rounds"]) + " Mpps"))
        rows.append(("new sessions / ceiling's packet rate", "", ranged(head["new_to_ceiling"]),
                     "rounds: " + ", ".join(f"{r['new_sessions']['sessions_per_s'] / 1e6:.2f}" for r in results["rounds"])
                     + " M sessions/s"))
        if "af_xdp_ratio" in head:
            rows.append(("Sluice / dpdk-testpmd, both on af_xdp (veth)", "", ranged(head["af_xdp_ratio"]),
                         "rounds: " + ", ".join(f"{v:.2f}" for v in head["af_xdp_ratio"].get("values", []))))
        rows.append(("DETAIL (the median round's runs, and single runs)", "", "", ""))
    c = results["ceiling"]
    rows.append(("dpdk-testpmd io-forward ceiling (memif)", f"{c['mpps_each_way']:.2f} Mpps each way", "1.00", ""))
    for name, label in (("sluice_1w", "Sluice FULLNAT UDP, 1 worker (memif)"), ("sluice_2w", "Sluice FULLNAT UDP, 2 workers (memif)")):
        s = results.get(name)
        if s:
            rows.append((label, f"{s['mpps_each_way']:.2f} Mpps each way", f"{s['ratio_to_ceiling']:.2f}",
                         f"{s['cycles_per_packet']:.0f} cyc/pkt ({split_note(s)}), busy {s['worker_busy_ratio']:.2f}, steering {s['steering']}"))
    if "new_sessions" in results:
        rows.append(("new sessions, every packet a new flow", f"{results['new_sessions']['sessions_per_s'] / 1e6:.2f} M sessions/s", "", "1 worker"))
    if "tcp" in results:
        rows.append(("TCP handshake+request+response+close", f"{results['tcp']['connections_per_s'] / 1e3:.1f} k conn/s", "", "1 worker"))
    if "synproxy" in results:
        p = results["synproxy"]
        rows.append(("SYN proxy: SYNs answered (cookies)", f"{p['syn_acks_per_s'] / 1e6:.2f} M SYN/s", "",
                     f"1 worker, {p['sessions_created']:.0f} sessions made for them"))
    if "synproxy_tcp" in results:
        rows.append(("TCP connections through the SYN proxy", f"{results['synproxy_tcp']['connections_per_s'] / 1e3:.1f} k conn/s", "", "1 worker"))
    for key, label in (("cpu_stalls", "CPU 1 alone: a loop reading the clock"),
                       ("cpu_stalls_generator", "CPU 0 (generator's, shared): the same")):
        if key in results:
            st = results[key]
            rows.append((label, f"{st['over_16us_per_s']:.0f} stalls/s over 16 us", "",
                         f"{st['over_64us_per_s']:.0f}/s over 64 us, {100 * st['stalled_share']:.1f} % of the time stalled, "
                         f"longest {st['longest_us']:.0f} us"))
    for share, lat in results.get("sluice_latency", {}).items():
        base = results.get("ceiling_latency", {}).get(share, {"p50": 0, "p99": 0})
        notes = f"added vs ceiling: p50 {(lat['p50'] - base['p50']) / 1e3:+.1f} us, p99 {(lat['p99'] - base['p99']) / 1e3:+.1f} us"
        if "preempted" in lat and "preempted" in base:
            notes += f", preempted {lat['preempted']} (testpmd {base['preempted']})"
        if "in_worker_us" in lat:
            w = lat["in_worker_us"]
            bound = lambda us: f"<= {us:g} us" if us is not None else "over 4096 us"
            notes += f"; in the worker p50 {bound(w['p50'])}, p99 {bound(w['p99'])}"
        ref = results.get("latency_reference")
        if ref:
            notes += f"; of {ref['mpps_each_way']:.2f} Mpps (busy {ref['worker_busy_ratio']:.2f})"
        rows.append((f"latency at {share}% of Sluice's max", f"p50 {lat['p50'] / 1e3:.1f} us, p99 {lat['p99'] / 1e3:.1f} us",
                     "", notes))
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
set title "64-byte UDP, Mpps each way (the median round's runs and single runs, this machine)"
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
        "own_cycles_per_packet": get("sluice_1w", "own_cycles_per_packet"),
        "ratio_2w": get("sluice_2w", "ratio_to_ceiling"), "new_sessions_per_s": get("new_sessions", "sessions_per_s"),
        "rounds": len(results.get("rounds", [])), "ratio_1w_median": get("headline", "ratio", "median"),
        "ratio_1w_min": get("headline", "ratio", "min"), "ratio_1w_max": get("headline", "ratio", "max"),
        "ratio_many_median": get("headline", "ratio_many", "median"),
        "new_to_ceiling_median": get("headline", "new_to_ceiling", "median"),
        "af_xdp_ratio_median": get("headline", "af_xdp_ratio", "median"),
        "tcp_conn_per_s": get("tcp", "connections_per_s"),
        "synproxy_syn_per_s": get("synproxy", "syn_acks_per_s"), "p99_50pct_ns": at_half.get("p99"),
        "p99_50pct_in_worker_us": (at_half.get("in_worker_us") or {}).get("p99"),
        "cpu_stalls_over_16us_per_s": get("cpu_stalls", "over_16us_per_s"),
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


def quick():
    """`--quick`: the ceiling, Sluice with one worker, and the ceiling again, at BENCH_FLOWS flows;
    one line of JSON (for before-and-after comparisons: alternate SLUICE_BIN between runs). The
    ratio is to the mean of the two ceilings around Sluice's run, so that the machine's drift
    within the minute counts less; both are given, and how far apart they were."""
    results = {}
    try:
        client, backend, servers = memif_path()
        with Isolated():
            with testpmd():
                before = gen("ceiling", client, backend)["rx_pps"]
            with Sluice(servers, "sb-lb") as s:
                r, m = gen_scraped(s, "fullnat", client, backend)
            with testpmd():
                after = gen("ceiling", client, backend)["rx_pps"]
        ceiling = (before + after) / 2
        results = {"flows": FLOWS, "sluice": str(SLUICE), "ceiling_mpps": mpps(ceiling),
                   "ceilings_mpps": [mpps(before), mpps(after)], "sluice_mpps": mpps(r["rx_pps"]),
                   "ratio": r["rx_pps"] / max(ceiling, 1), "bad": r["bad"], **cycles_split(m),
                   "testpmd_cycles_per_packet": tsc_hz() / max(2 * ceiling, 1)}
    finally:
        cleanup()
    print(json.dumps(results))


def profile():
    """`--profile`: Sluice with one worker at BENCH_FLOWS flows over memif, `perf record` on the
    worker's CPU meanwhile; one line of JSON: the share of samples in Sluice's own code against
    the memif PMD's (`own_to_pmd`), and the top symbols. The PMD's cost per packet is the same
    for any forwarder on this path, so this ratio moves with Sluice's own cost per packet and
    hardly with the machine's noise, unlike rates and ratios to the ceiling; but only while the
    worker is saturated (`worker_busy_ratio` near 1): a worker the generator cannot keep busy
    spends its samples in empty polls."""
    if not shutil.which("perf"):
        sh("apt-get", "install", "-y", "-qq", "--no-install-recommends", "linux-perf", capture=True)
    results = {}
    try:
        client, backend, servers = memif_path()
        data = RUN / "perf.data"
        with Isolated(), Sluice(servers, "sb-lb") as s:
            record = subprocess.Popen(["sh", "-c", f"sleep 2; exec perf record -q -C 1 -o {data} -- sleep {max(SECONDS - 4, 2)}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            r, m = gen_scraped(s, "fullnat", client, backend)
            record.wait(timeout=60)
        by_dso, by_symbol = perf_shares(data)
        own = sum(v for k, v in by_dso.items() if k == SLUICE.name)
        pmd = sum(v for k, v in by_dso.items() if "memif" in k)
        top = sorted(((v, k) for k, v in by_symbol.items() if not k.startswith("0x")), reverse=True)[:10]
        results = {"flows": FLOWS, "sluice": str(SLUICE), "sluice_mpps": mpps(r["rx_pps"]),
                   "worker_busy_ratio": metric(m, "sluice_worker_busy_ratio", worker=0), "own_share": own,
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
    brief = {k: {f: v for f, v in p.items() if f != "gen"} if isinstance(p, dict) else p
             for k, p in results.get("peers", {}).items()}
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
        with Isolated():
            run_memif(results)
            run_peers(results)
        run_memory(results)
    finally:
        cleanup()
    report(results)


if __name__ == "__main__":
    main()
