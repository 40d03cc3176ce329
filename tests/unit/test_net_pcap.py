"""pcap writing: classic libpcap, LINKTYPE_RAW, 0600 files in Tracee's layout."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from pytracee.net.pcap import PcapError, PcapSet, PcapWriter, capture_length, read_pcap, safe_name
from tests.unit import net_packets as b
from tests.unit.net_packets import pkt

C, S = "10.0.0.2", "93.184.216.34"
SYN = b.tcp4(C, S, 40001, 80, flags="S")
DNSQ = b.udp4(C, "8.8.8.8", 40000, 53, b.dns_query(0x1111, "www.example.com"))
HTTP = b.tcp4(C, S, 40001, 80, flags="PA", payload=b.HTTP_REQUEST)
PING6 = b.ipv6("2001:db8::2", "2001:db8::1", 58,
               b.icmp6("2001:db8::2", "2001:db8::1", 128, 0, b"\x00\x01\x00\x01abcd"))


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def no_umask():
    old = os.umask(0)       # whatever the umask, files must come out 0600
    yield
    os.umask(old)


def test_writer_bytes_and_read_back(tmp_path, no_umask):
    path = tmp_path / "a.pcap"
    w = PcapWriter(path, snaplen=96)
    w.write(1_700_000_000_123_456_789, SYN, len(SYN))
    w.write(1_700_000_001_000_000_001, HTTP, 1500)
    w.close()
    raw = path.read_bytes()
    assert raw[:24] == bytes.fromhex("4d3cb2a1" "0200" "0400" "00000000" "00000000"
                                     "60000000" "65000000")
    assert raw[24:40] == (1_700_000_000).to_bytes(4, "little") + (123_456_789).to_bytes(4, "little") \
        + (40).to_bytes(4, "little") + (40).to_bytes(4, "little")
    hdr, recs = read_pcap(path)
    assert hdr == {"magic": 0xA1B23C4D, "version": (2, 4), "snaplen": 96, "linktype": 101,
                   "nanosecond": True}
    assert recs == [(1_700_000_000_123_456_789, 40, 40, SYN),
                    (1_700_000_001_000_000_001, 96, 1500, HTTP[:96])]
    assert mode(path) == 0o600


def test_microsecond_timestamps(tmp_path):
    path = tmp_path / "us.pcap"
    w = PcapWriter(path, nanosecond=False)
    w.write(1_700_000_000_123_456_789, DNSQ, len(DNSQ))
    w.close()
    hdr, recs = read_pcap(path)
    assert hdr["magic"] == 0xA1B2C3D4 and not hdr["nanosecond"]
    assert recs == [(1_700_000_000_123_456_000, len(DNSQ), len(DNSQ), DNSQ)]


def test_reopen_appends_without_a_second_header(tmp_path):
    path = tmp_path / "r.pcap"
    for ts in (1, 2):
        w = PcapWriter(path)
        w.write(ts, SYN, len(SYN))
        w.close()
    hdr, recs = read_pcap(path)
    assert [r[0] for r in recs] == [1, 2]
    assert path.stat().st_size == 24 + 2 * (16 + len(SYN))


def test_refuses_to_append_to_another_format(tmp_path):
    path = tmp_path / "x.pcap"
    w = PcapWriter(path, nanosecond=False)
    w.close()
    with pytest.raises(PcapError):
        PcapWriter(path, nanosecond=True)
    half = tmp_path / "half.pcap"
    half.write_bytes(b"\x4d\x3c")       # a header cut short: started again
    w = PcapWriter(half)
    w.write(5, SYN, len(SYN))
    w.close()
    assert read_pcap(half)[1] == [(5, 40, 40, SYN)]


def test_existing_file_mode_is_not_changed(tmp_path):
    path = tmp_path / "keep.pcap"
    path.write_bytes(b"")
    os.chmod(path, 0o640)
    PcapWriter(path).close()
    assert mode(path) == 0o640       # no chmod after open: only new files get 0600


def test_split_layout(tmp_path, no_umask):
    ctr = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    with PcapSet(tmp_path / "pcap", ["single", "process", "container", "command"]) as ps:
        ps.write(pkt(SYN, ts_ns=10), 1234, "curl", 987654321, None)
        ps.write(pkt(DNSQ, ts_ns=11), 77, "nginx", 5, ctr)
        ps.write(pkt(HTTP, ts_ns=12), 1234, "curl", 987654321, "host")
    root = tmp_path / "pcap"
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*.pcap"))
    assert files == ["commands/0123456789a/nginx.pcap", "commands/host/curl.pcap",
                     "containers/0123456789a.pcap", "containers/host.pcap",
                     "processes/0123456789a/nginx_77_5.pcap",
                     "processes/host/curl_1234_987654321.pcap", "single.pcap"]
    assert [r[0] for r in read_pcap(root / "single.pcap")[1]] == [10, 11, 12]
    assert [r[3] for r in read_pcap(root / "commands/host/curl.pcap")[1]] == [SYN, HTTP]
    assert [r[3] for r in read_pcap(root / "containers/0123456789a.pcap")[1]] == [DNSQ]
    for p in root.rglob("*"):
        assert mode(p) == (0o700 if p.is_dir() else 0o600), p
    assert (ps.packets, ps.write_errors, ps.skipped) == (3, 0, 0)


def test_comm_is_made_a_safe_file_name(tmp_path):
    assert safe_name("a/b") == "a_b"
    assert safe_name("..") == "__" and safe_name(".") == "_" and safe_name("") == "_"
    assert safe_name("x\ny\x7f") == "x_y_"
    assert safe_name("kworker/0:1H") == "kworker_0:1H"
    with PcapSet(tmp_path / "pcap", "command") as ps:
        ps.write(pkt(SYN), 1, "../../etc", 1, None)
    assert (tmp_path / "pcap/commands/host/.._.._etc.pcap").exists()


def test_only_tcp_udp_icmp_are_captured(tmp_path):
    igmp = b.ipv4(C, "224.0.0.1", 2, b"\x11\x64\xee\x9b\x00\x00\x00\x00")
    hbh_udp = b.ipv6("2001:db8::2", "2001:db8::1", 0,
                     bytes([17, 0, 5, 2, 0, 0, 1, 0]) + b.udp("2001:db8::2", "2001:db8::1", 1, 2, b"xy"))
    ping = b.ipv4(C, S, 1, b.icmp(8, 0, 1, 1, bytes(56)))
    assert [capture_length(x, None) for x in (SYN, DNSQ, PING6, ping, hbh_udp)] == [
        40, len(DNSQ), len(PING6), 84, 58]
    assert [capture_length(x, 96) for x in (igmp, b"", b"\x45" * 10, b"\x00" * 40)] == [-1] * 4
    with PcapSet(tmp_path / "pcap") as ps:
        ps.write(pkt(igmp), 1, "x", 1, None)
        ps.write(pkt(PING6), 1, "x", 1, None)
    assert (ps.packets, ps.skipped) == (1, 1)


def test_snap_length_is_payload_past_the_headers():
    opts = b.tcp4(C, S, 40001, 80, flags="PA", options=bytes(12), payload=b"z" * 500)
    assert capture_length(opts, 96) == 20 + 32 + 96
    assert capture_length(opts, 0) == 52                 # network.pcap.snaplen=headers
    assert capture_length(HTTP, 10) == 50
    assert capture_length(HTTP, 4096) == len(HTTP)
    big_dns = b.udp4("8.8.8.8", C, 53, 40000, b.dns_cname_response())
    assert capture_length(big_dns, 0) == len(big_dns)    # DNS is kept whole, as Tracee
    ping = b.ipv4(C, S, 1, b.icmp(8, 0, 1, 1, bytes(56)))
    assert capture_length(ping, 0) == 84                 # so is ICMP
    frag = b.ipv4(C, S, 17, b"q" * 100, frag=3)
    assert capture_length(frag, 8) == 28


def test_packets_are_cut_to_the_snap_length(tmp_path):
    with PcapSet(tmp_path, snaplen=10) as ps:
        ps.write(pkt(HTTP), 1, "x", 1, None)
    hdr, recs = read_pcap(tmp_path / "single.pcap")
    assert hdr["snaplen"] == 262144
    assert recs == [(pkt(HTTP).ts_ns, 50, len(HTTP), HTTP[:50])]


def test_open_files_are_bounded(tmp_path):
    with PcapSet(tmp_path / "pcap", "process", max_open=2) as ps:
        for pid in (1, 2, 3, 1):
            ps.write(pkt(SYN, ts_ns=pid), pid, "p", 0, None)
        assert len(ps._open) == 2
    assert (ps.files_opened, ps.files_closed) == (4, 2)
    assert [r[0] for r in read_pcap(tmp_path / "pcap/processes/host/p_1_0.pcap")[1]] == [1, 1]


def test_failures_are_counted_not_raised(tmp_path):
    (tmp_path / "pcap").mkdir()
    (tmp_path / "pcap/single.pcap").mkdir()             # a directory where the file goes
    target = tmp_path / "victim"
    (tmp_path / "pcap/containers").mkdir()
    (tmp_path / "pcap/containers/host.pcap").symlink_to(target)
    with PcapSet(tmp_path / "pcap", ["single", "container"]) as ps:
        ps.write(pkt(SYN), 1, "x", 1, None)
        ps.write(pkt(SYN), 1, "x", 1, None)
    assert ps.write_errors == 4 and ps.packets == 0
    assert not target.exists()                          # never written through a symlink


def test_timestamp_offset(tmp_path):
    with PcapSet(tmp_path / "pcap", ts_offset_ns=1_000_000_000_000) as ps:
        ps.write(pkt(SYN, ts_ns=5), 1, "x", 1, None)
    assert read_pcap(tmp_path / "pcap/single.pcap")[1][0][0] == 1_000_000_000_005


def test_bad_split():
    with pytest.raises(ValueError, match="unknown"):
        PcapSet("/nonexistent", "thread")


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_reads_the_files(tmp_path):
    synack = b.tcp4(S, C, 80, 40001, flags="SA")
    with PcapSet(tmp_path / "pcap", snaplen=30) as ps:
        for i, data in enumerate((SYN, synack, DNSQ, HTTP, PING6)):
            ps.write(pkt(data, ts_ns=1_700_000_000_000_000_000 + i * 1_000_000), 1, "x", 1, None)
    out = subprocess.run(
        ["tshark", "-r", str(tmp_path / "pcap/single.pcap"), "-T", "fields", "-E", "separator=|",
         "-e", "frame.time_epoch", "-e", "frame.len", "-e", "frame.cap_len", "-e", "ip.src",
         "-e", "ipv6.src", "-e", "tcp.flags", "-e", "dns.qry.name", "-e", "http.request.uri",
         "-e", "icmpv6.type"],
        capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == [
        "1700000000.000000000|40|40|10.0.0.2||0x0002|||",
        "1700000000.001000000|40|40|93.184.216.34||0x0012|||",
        f"1700000000.002000000|{len(DNSQ)}|{len(DNSQ)}|10.0.0.2|||www.example.com||",
        f"1700000000.003000000|{len(HTTP)}|70|10.0.0.2||0x0018||/index.html?q=1|",
        f"1700000000.004000000|{len(PING6)}|{len(PING6)}||2001:db8::2||||128",
    ]
