"""Network workloads for the network event tests: small servers and clients, each
a process of its own that names itself (comm) first, on loopback or in a network
namespace joined by a veth pair."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# www.pytracee.test is a CNAME of web.pytracee.test, which has one A record.
DNS_NAME, DNS_CNAME, DNS_ADDR = "www.pytracee.test", "web.pytracee.test", "10.20.30.40"
DNS_CNAME_TTL, DNS_A_TTL = 60, 300
DNS_QUERY_ID = 0x1234

_NAME_COMM = "open('/proc/self/comm', 'w').write({comm!r})\n"

# DNS is told apart by port 53 (as Tracee does): the server binds it on loopback.
DNS_PORT = 53
# Answers every query with the CNAME and A records above (a real DNS reply, by hand:
# the test must not depend on the parser it checks).
DNS_SERVER = """
import socket, struct, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print(s.getsockname()[1], flush=True)
def name(n):
    return b"".join(bytes([len(p)]) + p.encode() for p in n.split(".")) + b"\\0"
while True:
    q, peer = s.recvfrom(512)
    end = 12
    while q[end]:
        end += q[end] + 1
    question = q[12:end + 5]
    target = name({cname!r})
    answers = b"\\xc0\\x0c" + struct.pack("!HHIH", 5, 1, {cname_ttl}, len(target)) + target
    addr = sys.argv[3] if len(sys.argv) > 3 else {addr!r}
    answers += target + struct.pack("!HHIH", 1, 1, {a_ttl}, 4) + socket.inet_aton(addr)
    s.sendto(q[:2] + struct.pack("!HHHHH", 0x8180, 1, 2, 0, 0) + question + answers, peer)
""".format(cname=DNS_CNAME, cname_ttl=DNS_CNAME_TTL, a_ttl=DNS_A_TTL, addr=DNS_ADDR)

DNS_CLIENT = """
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
name = sys.argv[3] if len(sys.argv) > 3 else {name!r}
qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0"
s.sendto(struct.pack("!HHHHHH", {qid}, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1),
         (host, port))
s.settimeout(10)
reply, _ = s.recvfrom(512)
print(s.getsockname()[1], len(reply), flush=True)
""".format(name=DNS_NAME, qid=DNS_QUERY_ID)

HTTP_BODY = b"hello from pytracee\n"
# One request, one fixed response, then close: exact bytes both ways.
HTTP_SERVER = """
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(4)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    data = b""
    while b"\\r\\n\\r\\n" not in data:
        chunk = c.recv(4096)
        if not chunk:
            break
        data += chunk
    body = {body!r}
    c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: "
              + str(len(body)).encode() + b"\\r\\nX-Pt: yes\\r\\n\\r\\n" + body)
    c.close()
""".format(body=HTTP_BODY)

HTTP_CLIENT = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET /hello/world?x=1 HTTP/1.1\\r\\nHost: pytracee.test\\r\\nUser-Agent: pt-agent/1.0\\r\\n"
          b"Accept: */*\\r\\n\\r\\n")
got = b""
while chunk := s.recv(4096):
    got += chunk
print(s.getsockname()[1], len(got), flush=True)
s.close()
"""

# Resolve the name at the DNS server on port 53, then connect to the address it gave.
RESOLVE_CONNECT = """
import socket, struct, sys
dns_host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
qname = b"".join(bytes([len(p)]) + p.encode() for p in {name!r}.split(".")) + b"\\0"
s.sendto(struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1),
         (dns_host, 53))
s.settimeout(10)
reply, _ = s.recvfrom(512)
addr = socket.inet_ntoa(reply[-4:])  # the last answer is the A record
c = socket.create_connection((addr, port), timeout=10)
print(c.getsockname()[1], addr, flush=True)
c.close()
""".format(name=DNS_NAME)

UDP_SEND = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"pytracee-udp", (host, port))
print(s.getsockname()[1], flush=True)
"""

UDP_RECV = """
import socket, sys
host = sys.argv[1]
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((host, 0))
print(s.getsockname()[1], flush=True)
s.settimeout(20)
s.recvfrom(512)
"""


def script(comm: str, code: str) -> list[str]:
    return [sys.executable, "-c", _NAME_COMM.format(comm=comm) + textwrap.dedent(code)]


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int


@contextmanager
def server(comm: str, code: str, *args: str) -> Iterator[Server]:
    """A server process that prints its port first; killed on exit."""
    proc = subprocess.Popen([*script(comm, code), *args], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip().isdigit(), f"server {comm} did not start: {line!r}"
        yield Server(proc, int(line))
    finally:
        proc.kill()
        proc.wait()


def client(comm: str, code: str, *args: str) -> tuple[int, list[str]]:
    """Run a client to completion: (its pid, what it printed, split)."""
    proc = subprocess.Popen([*script(comm, code), *args], stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, f"client {comm} failed"
    return proc.pid, out.split()


@dataclass
class Veth:
    netns: str
    host_addr: str
    ns_addr: str


@contextmanager
def veth_pair(netns: str = "pt-net", host: str = "10.99.7.1", peer: str = "10.99.7.2") -> Iterator[Veth]:
    """A network namespace joined to the host by a veth pair (host side pt-veth0)."""
    def ip(*argv: str) -> None:
        subprocess.run(["ip", *argv], check=True, capture_output=True)

    subprocess.run(["ip", "netns", "del", netns], capture_output=True)  # left by a crash
    subprocess.run(["ip", "link", "del", "pt-veth0"], capture_output=True)
    ip("netns", "add", netns)
    try:
        ip("link", "add", "pt-veth0", "type", "veth", "peer", "name", "pt-veth1")
        ip("link", "set", "pt-veth1", "netns", netns)
        ip("addr", "add", f"{host}/24", "dev", "pt-veth0")
        ip("link", "set", "pt-veth0", "up")
        ip("-n", netns, "addr", "add", f"{peer}/24", "dev", "pt-veth1")
        ip("-n", netns, "link", "set", "pt-veth1", "up")
        ip("-n", netns, "link", "set", "lo", "up")
        yield Veth(netns, host, peer)
    finally:
        subprocess.run(["ip", "link", "del", "pt-veth0"], capture_output=True)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
