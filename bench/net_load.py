"""Network load: what network events cost a loopback HTTP load, and how many packets
pytracee sees and loses.

    .venv/bin/python bench/net_load.py [--requests N] [--runs R] [--json]

Load (fixed): a small HTTP server and a client, both Python processes on 127.0.0.1; the
client makes N requests, each on a new TCP connection (connect, GET, 200 response with a
small body, close): about 10 packets per request, each seen twice by cgroup_skb (leaving
one socket, entering the other). "load s" is the client's wall time for the N requests.

Cases, each run R times; runs interleave the cases and rotate their order; every figure
is the MEDIAN of the R runs, with min..max:

  untraced              the load alone
  dumpcap (peer)        Wireshark's capture engine writing every loopback packet to
                        /dev/null (`dumpcap -i lo -w /dev/null`): the price of seeing
                        the same packets with a classic packet capture
  pytracee network      `pytracee -e <all 14 network events and net_tcp_connect>
                        -o json:/dev/null`
  pytracee default      `pytracee -o json:/dev/null` (Tracee's default set, which has the
                        DNS, HTTP request/response, ICMP and net_tcp_connect events)

For the pytracee cases: start, wait until attached and idle, run the load, wait until
pytracee is idle again (it drains what the load produced), SIGINT it and parse its summary
line: packets read, events delivered, lost (by reason). "packets/s" = packets read over
the time from load start to pytracee idle.

Needs root. Every child runs in its own session and is stopped on exit, error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import syscall_storm as storm  # noqa: E402  (children, stderr reader, idle wait, summary)
from syscall_storm import CHILDREN, BenchError, log  # noqa: E402

NET_EVENTS = ("net_packet_ipv4,net_packet_ipv6,net_packet_tcp,net_packet_udp,net_packet_icmp,"
              "net_packet_icmpv6,net_packet_dns,net_packet_dns_request,net_packet_dns_response,"
              "net_packet_http,net_packet_http_request,net_packet_http_response,"
              "net_flow_tcp_begin,net_flow_tcp_end,net_tcp_connect")
SETTLE_TIMEOUT_S = 15.0
DRAIN_TIMEOUT_S = 300.0

SERVER = """
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(128)
print(s.getsockname()[1], flush=True)
body = b"x" * 64
reply = (b"HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 64\\r\\n"
         b"Connection: close\\r\\n\\r\\n" + body)
while True:
    c, _ = s.accept()
    data = b""
    while b"\\r\\n\\r\\n" not in data:
        chunk = c.recv(4096)
        if not chunk:
            break
        data += chunk
    c.sendall(reply)
    c.close()
"""

CLIENT = """
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
req = b"GET /item HTTP/1.1\\r\\nHost: bench.local\\r\\nUser-Agent: pt-bench\\r\\n\\r\\n"
t0 = time.monotonic()
for _ in range(n):
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(req)
    while c.recv(4096):
        pass
    c.close()
print(time.monotonic() - t0, flush=True)
"""


def run_load(ctx: argparse.Namespace) -> dict:
    srv = CHILDREN.spawn([sys.executable, "-c", SERVER], stdout=subprocess.PIPE)
    try:
        assert srv.stdout is not None
        port = srv.stdout.readline().decode().strip()
        if not port.isdigit():
            raise BenchError("the HTTP server did not start")
        cli = CHILDREN.spawn([sys.executable, "-c", CLIENT, port, str(ctx.requests)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = cli.communicate(timeout=ctx.timeout)
        if cli.returncode != 0:
            raise BenchError(f"load client failed: {err.decode(errors='replace').strip()[-200:]}")
        return {"load_s": float(out.decode().strip()), "t_end": time.monotonic()}
    finally:
        CHILDREN.stop(srv, signal.SIGKILL)


def case_untraced(ctx: argparse.Namespace) -> dict:
    r = run_load(ctx)
    r.pop("t_end")
    return r


def case_dumpcap(ctx: argparse.Namespace) -> dict:
    p = CHILDREN.spawn([ctx.dumpcap, "-q", "-i", "lo", "-w", "/dev/null"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        err = storm.LineCollector(p.stderr)
        if not err.wait_for("Capturing on", 30):
            raise BenchError(f"dumpcap did not start: {err.tail()}")
        r = run_load(ctx)
        r.pop("t_end")
    finally:
        CHILDREN.stop(p)
    return r


def traced(args: list[str]) -> Callable[[argparse.Namespace], dict]:
    def case(ctx: argparse.Namespace) -> dict:
        p, err = storm.start_pytracee(args)
        try:
            storm.wait_idle(p.pid, SETTLE_TIMEOUT_S)
            ticks0 = storm.cpu_ticks(p.pid)
            t0 = time.monotonic()
            r = run_load(ctx)
            idle_ns, ticks1 = storm.wait_idle(p.pid, DRAIN_TIMEOUT_S)
            busy_s = max(idle_ns / 1e9 - t0, r["load_s"])
            r.pop("t_end")
            r["tracer_cpu_pct"] = (ticks1 - ticks0) / storm.CLK_TCK / busy_s * 100
            r.update(storm.stop_pytracee(p, err))
            r["packets_per_s"] = r.get("packets", 0) / busy_s
        finally:
            CHILDREN.stop(p)
        return r
    return case


CASES: list[tuple[str, str, Callable[[argparse.Namespace], dict]]] = [
    ("untraced", "untraced", case_untraced),
    ("dumpcap", "dumpcap -i lo (peer)", case_dumpcap),
    ("pt_network", "pytracee network events", traced(["-e", NET_EVENTS, "-o", "json:/dev/null"])),
    ("pt_default", "pytracee default set", traced(["-o", "json:/dev/null"])),
]


def span(runs: list[dict], key: str, fmt: str) -> str:
    vals = [r[key] for r in runs if key in r]
    return f"{fmt.format(min(vals))}..{fmt.format(max(vals))}" if vals else "-"


def render(ctx: argparse.Namespace, results: dict[str, list[dict]]) -> str:
    base = storm.median_of(results.get("untraced", []), "load_s")
    lines = [
        f"network load: kernel {platform.release()}, 2 CPUs, runs={ctx.runs}; "
        f"{ctx.requests} HTTP requests on new TCP connections over loopback",
        "every figure is the MEDIAN of the runs (interleaved, order rotated), min..max in brackets",
        "| case                       | load s |   (min..max) | slowdown | requests/s | "
        "packets read | packets/s | events delivered | lost | tracer CPU % |",
        "|----------------------------|--------|--------------|----------|------------|"
        "--------------|-----------|------------------|------|--------------|",
    ]
    for key, label, _ in CASES:
        runs = results.get(key, [])
        if not runs:
            lines.append(f"| {label:26s} | not run: {ctx.skipped.get(key, 'failed')} |")
            continue
        load = storm.median_of(runs, "load_s")
        slow = f"{load / base:.2f}x" if base and load else "-"

        def num(k: str, fmt: str = "{:,.0f}") -> str:
            v = storm.median_of(runs, k)
            return fmt.format(v) if v is not None else "-"
        lines.append(f"| {label:26s} | {load:6.3f} | {span(runs, 'load_s', '{:.3f}'):>12s} | "
                     f"{slow:>8s} | {ctx.requests / load:10,.0f} | {num('packets'):>12s} | "
                     f"{num('packets_per_s'):>9s} | {num('delivered'):>16s} | {num('lost'):>4s} | "
                     f"{num('tracer_cpu_pct', '{:.0f}'):>12s} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--json", action="store_true")
    ctx = ap.parse_args()
    ctx.skipped = {}
    ctx.dumpcap = shutil.which("dumpcap")
    if storm.prepare("cgroup_skb programs, dumpcap on lo") is not None:
        return 2
    cases = [c for c in CASES if c[0] != "dumpcap" or ctx.dumpcap]
    if not ctx.dumpcap:
        ctx.skipped["dumpcap"] = "dumpcap not installed (apt-get install -y tshark)"
    results: dict[str, list[dict]] = {}
    try:
        for run in range(ctx.runs):
            order = cases[run % len(cases):] + cases[:run % len(cases)]
            for key, label, fn in order:
                log(f"run {run + 1}/{ctx.runs}: {label} ...")
                try:
                    r = fn(ctx)
                except BenchError as exc:
                    log(f"  failed: {exc}")
                    ctx.skipped[key] = str(exc)
                    continue
                log(f"  {r}")
                results.setdefault(key, []).append(r)
    finally:
        CHILDREN.stop_all()
    if ctx.json:
        print(json.dumps(results, indent=2))
    else:
        print(render(ctx, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
