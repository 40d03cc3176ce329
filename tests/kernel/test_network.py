"""Network events: packets from cgroup_skb, attributed to the owning process, and the
DNS, HTTP, flow and pcap output derived from them (real traffic on loopback and
across a veth pair)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from pytracee.capture.options import CaptureOptions
from tests.kernel import netload as nl
from tests.docker_env import Containers
from tests.kernel.harness import Session, of


def meta(src: str, dst: str, sport: int, dport: int, proto: int, length: int) -> dict:
    return {"src_ip": src, "dst_ip": dst, "src_port": sport, "dst_port": dport, "protocol": proto,
            "packet_len": length, "iface": "any"}


def dns_exchange(s: Session, host: str) -> tuple[int, int, int, list]:
    """Query the test DNS server on `host`: (client pid, client port, server port, events)."""
    with nl.server("pt-dnssrv", nl.DNS_SERVER, host, str(nl.DNS_PORT)) as srv:
        pid, out = nl.client("pt-dnscli", nl.DNS_CLIENT, host, str(srv.port))
        events = s.drain()
    return pid, int(out[0]), srv.port, events


def test_dns_request_and_response_over_udp(tmp_path: Path) -> None:
    capture = CaptureOptions(network=True, dir=str(tmp_path))
    with Session(["net_packet_dns_request", "net_packet_dns_response"], capture=capture) as s:
        pid, cport, sport, events = dns_exchange(s, "127.0.0.1")
    req = of(events, "net_packet_dns_request", comm="pt-dnscli")
    resp = of(events, "net_packet_dns_response", comm="pt-dnscli")
    assert len(req) == 1 and len(resp) == 1
    assert req[0].ctx.host_pid == pid and resp[0].ctx.host_pid == pid
    qlen = 20 + 8 + 12 + len(nl.DNS_NAME) + 2 + 4
    assert req[0].arg("metadata") == meta("127.0.0.1", "127.0.0.1", cport, sport, 17, qlen)
    question = {"query": nl.DNS_NAME, "query_type": "A", "query_class": "IN"}
    assert req[0].arg("dns_questions") == [question]
    assert resp[0].arg("metadata")["src_port"] == sport
    assert resp[0].arg("metadata")["dst_port"] == cport
    assert resp[0].arg("dns_response") == [{
        "query_data": question,
        "dns_answer": [{"answer_type": "CNAME", "ttl": nl.DNS_CNAME_TTL, "answer": nl.DNS_CNAME},
                       {"answer_type": "A", "ttl": nl.DNS_A_TTL, "answer": nl.DNS_ADDR}],
    }]
    # The server's side of the same exchange is attributed to the server.
    assert len(of(events, "net_packet_dns_request", comm="pt-dnssrv")) == 1
    assert not [e for e in events if e.definition.internal]  # packet records: never delivered

    # What tshark reads in pytracee's pcap is what the events said.
    pcap = tmp_path / "pcap" / "single.pcap"
    assert stat.S_IMODE(pcap.stat().st_mode) == 0o600
    tshark = shutil.which("tshark")
    assert tshark is not None, "tshark is installed by make (APT_PACKAGES)"
    res = subprocess.run([tshark, "-r", str(pcap), "-Y", f"udp.port == {cport}", "-T", "fields",
                          "-E", "separator=|", "-e", "ip.src", "-e", "udp.srcport",
                          "-e", "udp.dstport", "-e", "dns.qry.name", "-e", "dns.cname",
                          "-e", "dns.a", "-e", "dns.resp.ttl"],
                         capture_output=True, text=True, timeout=60, check=True)
    rows = {tuple(line.split("|")) for line in res.stdout.splitlines()}
    # Each packet is in the pcap twice: as it left one socket and came into the other.
    assert rows == {
        ("127.0.0.1", str(cport), str(sport), nl.DNS_NAME, "", "", ""),
        ("127.0.0.1", str(sport), str(cport), nl.DNS_NAME, nl.DNS_CNAME, nl.DNS_ADDR,
         f"{nl.DNS_CNAME_TTL},{nl.DNS_A_TTL}"),
    }
    assert len(res.stdout.splitlines()) == 4


def test_http_request_response_and_tcp_flow() -> None:
    names = ["net_packet_http_request", "net_packet_http_response", "net_flow_tcp_begin",
             "net_flow_tcp_end", "net_tcp_connect"]
    with Session(names) as s:
        with nl.server("pt-httpsrv", nl.HTTP_SERVER) as srv:
            pid, out = nl.client("pt-httpcli", nl.HTTP_CLIENT, str(srv.port))
            events = s.drain()
        spid = srv.proc.pid
    cport = int(out[0])
    assert int(out[1]) > len(nl.HTTP_BODY)

    req = of(events, "net_packet_http_request", comm="pt-httpcli")
    assert len(req) == 1 and req[0].ctx.host_pid == pid
    r = req[0].arg("http_request")
    assert (r["method"], r["protocol"], r["host"], r["uri_path"]) == \
        ("GET", "HTTP/1.1", "pytracee.test", "/hello/world")
    assert r["headers"]["User-Agent"] == ["pt-agent/1.0"]
    assert r["content_length"] == 0
    assert req[0].arg("metadata")["dst_port"] == srv.port
    assert req[0].arg("metadata")["src_port"] == cport
    # The server got it before its accept() returned: still its event.
    sreq = of(events, "net_packet_http_request", comm="pt-httpsrv")
    assert [e.ctx.host_pid for e in sreq] == [spid]

    resp = of(events, "net_packet_http_response", comm="pt-httpcli")
    assert len(resp) == 1
    h = resp[0].arg("http_response")
    assert (h["status"], h["status_code"], h["protocol"]) == ("200 OK", 200, "HTTP/1.1")
    assert h["headers"]["X-Pt"] == ["yes"]
    assert h["content_length"] == len(nl.HTTP_BODY)

    tup = ("127.0.0.1", "127.0.0.1", cport, srv.port)
    out_begin = of(events, "net_flow_tcp_begin", comm="pt-httpcli")
    in_begin = of(events, "net_flow_tcp_begin", comm="pt-httpsrv")
    assert [(e.arg("conn_direction"), e.arg("src"), e.arg("dst"), e.arg("src_port"),
             e.arg("dst_port")) for e in out_begin] == [("outgoing", *tup)]
    assert [(e.arg("conn_direction"), e.arg("src"), e.arg("dst"), e.arg("src_port"),
             e.arg("dst_port")) for e in in_begin] == [("incoming", *tup)]
    ends = of(events, "net_flow_tcp_end", comm="pt-httpcli") + \
        of(events, "net_flow_tcp_end", comm="pt-httpsrv")
    assert ends and all((e.arg("src_port"), e.arg("dst_port")) in ((cport, srv.port),
                                                                   (srv.port, cport))
                        for e in ends)

    conn = of(events, "net_tcp_connect", comm="pt-httpcli")
    assert [(e.arg("dst"), e.arg("dst_port"), e.arg("dst_dns")) for e in conn] == \
        [("127.0.0.1", srv.port, [])]
    assert not of(events, "security_socket_connect")  # sent only for net_tcp_connect


def test_kernel_sends_only_the_packets_of_the_selected_class() -> None:
    # HTTP events: the request leaving the client and the response coming in, nothing else
    # of the ~10 packets of the connection on the client's side.
    with Session(["net_packet_http_request"], ["comm=pt-httpcli"]) as s:
        with nl.server("pt-httpsrv", nl.HTTP_SERVER) as srv:
            nl.client("pt-httpcli", nl.HTTP_CLIENT, str(srv.port))
            events = s.drain()
        assert s.network.packets == 2
        assert s.tracer.stats([702])[0] == {702: 2}  # submitted, by base
    assert [e.name for e in events] == ["net_packet_http_request"]
    # Flows: SYN, SYN-ACK, and the FIN/ACKs of the close (not the data packets).
    with Session(["net_flow_tcp_end"], ["comm=pt-httpcli"]) as s:
        with nl.server("pt-httpsrv", nl.HTTP_SERVER) as srv:
            nl.client("pt-httpcli", nl.HTTP_CLIENT, str(srv.port))
            events = s.drain()
        sent = s.tracer.stats([700, 701, 702, 703])[0]
    # SYN out, SYN-ACK in, FIN in, FIN out: 4; TCP may send a FIN on its own or on the
    # last data segment, and ACK a FIN with a segment of its own or not.
    assert set(sent) == {703} and 4 <= sent[703] <= 6
    assert [e.name for e in events] == ["net_flow_tcp_end"]


def resolve_and_connect(s: Session) -> tuple[int, int, list]:
    with nl.server("pt-dnssrv", nl.DNS_SERVER, "127.0.0.1", str(nl.DNS_PORT), "127.0.0.1"), \
            nl.server("pt-httpsrv", nl.HTTP_SERVER) as web:
        pid, out = nl.client("pt-resolver", nl.RESOLVE_CONNECT, "127.0.0.1", str(web.port))
        events = s.drain()
    assert out[1] == "127.0.0.1"
    return pid, web.port, events


def test_tcp_connect_and_flow_are_named_from_the_dns_cache() -> None:
    names = [nl.DNS_NAME, nl.DNS_CNAME]
    # net_tcp_connect alone: the kernel sends the DNS packets only (for the cache).
    with Session(["net_tcp_connect"], ["comm=pt-resolver"]) as s:
        pid, port, events = resolve_and_connect(s)
        assert s.network.packets == 2  # the query and its reply; no TCP packet
    assert [(e.name, e.ctx.host_pid, e.arg("dst"), e.arg("dst_port"), e.arg("dst_dns"))
            for e in events] == [("net_tcp_connect", pid, "127.0.0.1", port, names)]

    with Session(["net_flow_tcp_begin"], ["comm=pt-resolver"]) as s:
        pid, port, events = resolve_and_connect(s)
    assert [(e.name, e.ctx.host_pid, e.arg("conn_direction"), e.arg("dst_port"), e.arg("dst_dns"))
            for e in events] == [("net_flow_tcp_begin", pid, "outgoing", port, names)]


def test_icmp_ping_across_a_veth_pair() -> None:
    ping = shutil.which("ping")
    assert ping is not None, "ping is installed by make (APT_PACKAGES: iputils-ping)"
    with nl.veth_pair() as v, Session(["net_packet_icmp"], ["comm=ping"]) as s:
        res = subprocess.run([ping, "-c", "1", "-W", "5", v.ns_addr], capture_output=True,
                             text=True, timeout=30)
        assert res.returncode == 0, res.stdout + res.stderr
        events = s.drain()
    icmp = of(events, "net_packet_icmp", comm="ping")
    got = [(e.arg("src"), e.arg("dst"), e.arg("metadata")["direction"],
            e.arg("proto_icmp")["typeCode"]) for e in icmp]
    assert got == [(v.host_addr, v.ns_addr, "egress", "EchoRequest"),
                   (v.ns_addr, v.host_addr, "ingress", "EchoReply")]


def test_ipv6_udp_on_loopback() -> None:
    with Session(["net_packet_ipv6", "net_packet_udp"], ["comm=pt-udp6tx"]) as s:
        with nl.server("pt-udp6rx", nl.UDP_RECV, "::1") as rx:
            pid, out = nl.client("pt-udp6tx", nl.UDP_SEND, "::1", str(rx.port))
            rx.proc.wait(timeout=20)
        events = s.drain()
    v6 = of(events, "net_packet_ipv6", comm="pt-udp6tx")
    udp = of(events, "net_packet_udp", comm="pt-udp6tx")
    assert [(e.ctx.host_pid, e.arg("src"), e.arg("dst"), e.arg("metadata")) for e in v6] == \
        [(pid, "::1", "::1", {"direction": "egress"})]
    assert [(e.arg("src_port"), e.arg("dst_port"), e.arg("proto_udp")["length"]) for e in udp] == \
        [(int(out[0]), rx.port, 8 + len(b"pytracee-udp"))]
    assert not of(events, "net_packet_udp", comm="pt-udp6rx")  # out of the policy's scope


def test_cli_dns_filter_and_pcap_per_process(tmp_path: Path) -> None:
    """`pytracee` with a filter on DNS names and --capture network split by process."""
    from tests.kernel import cli_proc

    proc = cli_proc.start("-e", f"net_packet_dns_request.data.dns_questions.query={nl.DNS_NAME}",
                          "-s", "comm=pt-dnscli", "-o", "json",
                          "--capture", "network", "--capture", "pcap:process",
                          "--capture", f"dir:{tmp_path}")
    with nl.server("pt-dnssrv", nl.DNS_SERVER, "127.0.0.1", str(nl.DNS_PORT)) as srv:
        other, _ = nl.client("pt-dnscli", nl.DNS_CLIENT, "127.0.0.1", str(srv.port),
                             "other.pytracee.test")
        pid, out = nl.client("pt-dnscli", nl.DNS_CLIENT, "127.0.0.1", str(srv.port))
    stdout, err = cli_proc.stop(proc)
    events = [json.loads(line) for line in stdout.splitlines()]
    assert [(e["eventName"], e["hostProcessId"], e["args"][1]["value"][0]["query"])
            for e in events] == [("net_packet_dns_request", pid, nl.DNS_NAME)]
    assert "filtered in user space: 1," in err  # the other name's query
    assert other != pid
    # pcap takes every packet of the processes in scope (filters choose events, not packets):
    # one file per process.
    pcaps = sorted(p.relative_to(tmp_path / "pcap") for p in (tmp_path / "pcap").rglob("*.pcap"))
    assert [p.parts[:2] for p in pcaps] == [("processes", "host")] * 2
    assert sorted(p.name.split("_")[:2] for p in pcaps) == sorted(
        [["pt-dnscli", str(other)], ["pt-dnscli", str(pid)]])
    assert {stat.S_IMODE(os.stat(tmp_path / "pcap" / p).st_mode) for p in pcaps} == {0o600}


@pytest.mark.parametrize("bad", ["net_packet_dns_request.data.nope=x"])
def test_unknown_network_filter_field_is_a_usage_error(bad: str) -> None:
    from tests.kernel.cli_proc import PYTRACEE

    res = subprocess.run([str(PYTRACEE), "-e", bad], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "nope" in res.stderr and "Traceback" not in res.stderr


def test_container_dns_query_carries_the_container_and_its_pcap(docker_containers: Containers,
                                                                tmp_path: Path) -> None:
    from tests.kernel import cli_proc

    proc = cli_proc.start("-e", "net_packet_dns_request", "-s", "container", "-o", "json",
                          "--capture", "network", "--capture", "pcap:container",
                          "--capture", f"dir:{tmp_path}")
    # --network none: loopback only, where nobody answers; the query still leaves.
    cid = docker_containers.run("pt-netc", cmd=("nslookup", nl.DNS_NAME, "127.0.0.1"),
                                detach=False)
    stdout, _ = cli_proc.stop(proc)
    reqs = [json.loads(line) for line in stdout.splitlines()]
    assert reqs and {(e["eventName"], e["containerId"], e["processName"]) for e in reqs} == \
        {("net_packet_dns_request", cid, "nslookup")}
    assert {e["container"]["name"] for e in reqs} == {"pt-netc"}
    assert {q["query"] for e in reqs for q in e["args"][1]["value"]} == {nl.DNS_NAME}
    pcap = tmp_path / "pcap" / "containers" / f"{cid[:11]}.pcap"
    assert stat.S_IMODE(pcap.stat().st_mode) == 0o600
    assert sorted(p.name for p in (tmp_path / "pcap").rglob("*.pcap")) == [pcap.name]


UDP_TWICE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.1", int(sys.argv[1])))
for line in sys.stdin:          # one datagram per line the test writes
    s.send(line.strip().encode())
    print("sent", flush=True)
"""


def test_a_socket_opened_before_a_reload_is_scoped_by_the_new_policies(tmp_path: Path) -> None:
    from pytracee.cli import policy_runtime

    def policies(*docs: tuple[str, str]) -> list[str]:
        d = tmp_path / f"v{len(list(tmp_path.iterdir()))}"
        d.mkdir()
        for i, (name, comm) in enumerate(docs):
            (d / f"{i}.yaml").write_text(
                f"type: policy\nname: {name}\nscope: [comm={comm}]\nrules:\n  - event: net_packet_udp\n")
        return [str(d)]

    with Session(policies=policies(("first", "pt-udpold"))) as s, \
            nl.server("pt-udprx", nl.UDP_RECV, "127.0.0.1") as rx:
        cli = subprocess.Popen(nl.script("pt-udpold", UDP_TWICE) + [str(rx.port)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert cli.stdin is not None and cli.stdout is not None
        cli.stdin.write("one\n")
        cli.stdin.flush()
        assert cli.stdout.readline() == "sent\n"
        before = list(s.drain())
        # v1: the socket's owner is in the second policy's scope, not the first's.
        s.pipeline.reload(policy_runtime(1, policies(("other", "pt-nobody"),
                                                     ("second", "pt-udpold")), [], []))
        cli.stdin.write("two\n")
        cli.stdin.flush()
        assert cli.stdout.readline() == "sent\n"
        cli.stdin.close()
        cli.wait(timeout=10)
        after = s.drain()[len(before):]
    mine = of(before, "net_packet_udp", comm="pt-udpold")
    assert [(e.version, e.matched) for e in mine] == [(0, 0b1)]
    mine = of(after, "net_packet_udp", comm="pt-udpold")
    assert [(e.version, e.matched, e.arg("proto_udp")["length"]) for e in mine] == [
        (1, 0b10, 8 + 3)]


# The listener is created by a process in scope; a child out of scope accepts and serves.
SPLIT_SERVER = """
import os, socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(4)
print(s.getsockname()[1], flush=True)
if os.fork() == 0:
    open('/proc/self/comm', 'w').write('pt-acceptor')
    c, _ = s.accept()
    print("accepted", flush=True)
    data = c.recv(4096)
    c.sendall(b"HTTP/1.1 204 No Content\\r\\n\\r\\n")
    c.close()
    os._exit(0)
os.wait()
"""

SLOW_CLIENT = """
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
sys.stdin.readline()            # until the server says it accepted
c.sendall(b"GET /x HTTP/1.1\\r\\nHost: h\\r\\n\\r\\n")
c.recv(4096)
"""


def test_an_accepted_connection_belongs_to_the_acceptor_not_the_listener() -> None:
    with Session(["net_packet_http_request", "net_packet_http_response"], ["comm=pt-listener"]) as s:
        srv = subprocess.Popen(nl.script("pt-listener", SPLIT_SERVER), stdout=subprocess.PIPE,
                               text=True)
        assert srv.stdout is not None
        port = int(srv.stdout.readline())
        cli = subprocess.Popen(nl.script("pt-slowcli", SLOW_CLIENT) + [str(port)],
                               stdin=subprocess.PIPE, text=True)
        assert srv.stdout.readline() == "accepted\n"
        cli.communicate("go\n", timeout=20)
        srv.wait(timeout=20)
        events = s.drain()
    # pt-acceptor is out of scope: its connection's packets are not the listener's.
    assert [(e.name, e.ctx.comm) for e in events] == []
