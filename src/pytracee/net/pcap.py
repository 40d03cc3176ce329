"""Captured packets to pcap files, in Tracee's layout (--artifacts network).

    <pcap dir>/single.pcap                                   split=single
    <pcap dir>/processes/<ctr>/<comm>_<pid>_<start>.pcap     split=process
    <pcap dir>/containers/<ctr>.pcap                         split=container
    <pcap dir>/commands/<ctr>/<comm>.pcap                    split=command

(the pcap dir is out/pcap). <ctr> is the container id cut to 11 characters, or
"host" (as Tracee). Splits combine: a packet goes to one file per split. Only
TCP, UDP, ICMP and ICMPv6 packets are written, as Tracee captures. The snap
length is Tracee's: bytes of payload kept past the IP and TCP/UDP headers (0:
headers only, None: whole packets); ICMP and DNS packets are kept whole, as
Tracee keeps them.

Files are classic libpcap (what every reader opens), LINKTYPE_RAW (101: the
packet starts at its IP header, as cgroup_skb sees it), nanosecond timestamps by
default. Tracee writes pcapng with a fake link header instead; any pcap reader
takes either. Files are created 0600 (os.open with the mode, no chmod after),
directories 0700, and never through a symlink. Reopening a file appends to it.
At most `max_open` files are open; the least recently used is closed first.
Each packet is one write(2) of record header + data, so a reader sees whole
records while pytracee runs. Failures are counted, never raised.
"""

from __future__ import annotations

import logging
import os
import struct
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from pytracee.net.packet import Packet

log = logging.getLogger(__name__)

LINKTYPE_RAW = 101
MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D
_FILE_HDR = struct.Struct("<IHHiIII")
_REC_HDR = struct.Struct("<IIII")
SPLITS = ("single", "process", "container", "command")
FILE_SNAPLEN = 262144       # the file header's limit: tcpdump's, above any packet we get
DEFAULT_PAYLOAD_SNAPLEN = 96    # Tracee's network.pcap.snaplen=default

_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
_CAPTURED_V4 = frozenset({1, 6, 17})        # ICMP, TCP, UDP
_CAPTURED_V6 = frozenset({6, 17, 58})       # TCP, UDP, ICMPv6
_IP6_EXT = frozenset({0, 43, 60})


class PcapError(OSError):
    """An existing file that is not a pcap this writer can append to."""


class PcapWriter:
    """One classic pcap file, opened for appending."""

    __slots__ = ("path", "snaplen", "nanosecond", "_fd")

    def __init__(self, path: str | os.PathLike[str], snaplen: int = FILE_SNAPLEN,
                 nanosecond: bool = True, linktype: int = LINKTYPE_RAW) -> None:
        self.path = os.fspath(path)
        self.snaplen = snaplen
        self.nanosecond = nanosecond
        fd = os.open(self.path, _OPEN_FLAGS, 0o600)
        try:
            size = os.fstat(fd).st_size
            magic = MAGIC_NS if nanosecond else MAGIC_US
            header = _FILE_HDR.pack(magic, 2, 4, 0, 0, snaplen, linktype)
            if size < _FILE_HDR.size:
                if size:
                    os.ftruncate(fd, 0)     # a header cut short by a crash: start again
                _write_all(fd, header)
            else:
                old = os.pread(fd, _FILE_HDR.size, 0)
                m, _, _, _, _, _, lt = _FILE_HDR.unpack(old)
                if m != magic or lt != linktype:
                    raise PcapError(f"{self.path}: not a pcap of this timestamp unit and link type")
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def write(self, ts_ns: int, data: bytes, orig_len: int) -> None:
        """One record; `data` is cut to the snap length, `orig_len` is the packet's
        length on the wire. Raises OSError."""
        incl = data[:self.snaplen]
        if self.nanosecond:
            sec, frac = divmod(ts_ns, 1_000_000_000)
        else:
            sec, frac = divmod(ts_ns // 1000, 1_000_000)
        orig = min(max(orig_len, len(data)), 0xFFFFFFFF)
        rec = _REC_HDR.pack(sec & 0xFFFFFFFF, frac, len(incl), orig) + incl
        _write_all(self._fd, rec)

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


def _write_all(fd: int, buf: bytes) -> None:
    n = os.write(fd, buf)
    if n != len(buf):
        raise OSError(f"short write ({n} of {len(buf)} bytes)")


def _mkdirs(path: Path) -> None:
    """makedirs where every directory it creates is 0700 (os.makedirs gives its
    mode to the last one only)."""
    missing = []
    p = path
    while not p.is_dir():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass


def capture_length(data: bytes, payload_snaplen: int | None) -> int:
    """How many bytes of a packet Tracee would capture, -1 for none: TCP, UDP and
    ICMP(v6) only; headers plus `payload_snaplen` payload bytes (None: all);
    ICMP and DNS (port 53) packets whole."""
    n = len(data)
    if not n:
        return -1
    v = data[0] >> 4
    if v == 4:
        if n < 20 or data[9] not in _CAPTURED_V4:
            return -1
        proto, off = data[9], (data[0] & 15) << 2
        if (data[6] & 0x1F) or data[7]:
            return n if payload_snaplen is None else min(n, off + payload_snaplen)  # a later fragment
    elif v == 6:
        if n < 40:
            return -1
        proto, off = data[6], 40
        while proto in _IP6_EXT and off + 2 <= n:
            proto, off = data[off], off + ((data[off + 1] + 1) << 3)
        if proto not in _CAPTURED_V6:
            return -1
    else:
        return -1
    if payload_snaplen is None or proto == 1 or proto == 58:
        return n
    if proto == 6:
        if off + 13 >= n:
            return n
        end = off + ((data[off + 12] >> 4) << 2)
    else:
        end = off + 8
    if off + 4 <= n:
        sport = (data[off] << 8) | data[off + 1]
        dport = (data[off + 2] << 8) | data[off + 3]
        if sport == 53 or dport == 53:
            return n
    return min(n, end + payload_snaplen)


def container_dir(container_id: str | None) -> str:
    """Tracee's <ctr>: the id cut to 11 characters, "host" outside containers."""
    if not container_id or container_id == "host":
        return "host"
    return safe_name(container_id[:11])


def safe_name(name: str) -> str:
    """A file name from a comm or an id: no path separators, NULs or control
    characters, never "" "." or ".." (Tracee only replaces '/')."""
    out = "".join("_" if ch == "/" or ch == "\\" or ord(ch) < 0x20 or ch == "\x7f" else ch
                  for ch in name)
    if out in ("", ".", ".."):
        out = out.replace(".", "_") or "_"
    return out


class PcapSet:
    """Route captured packets to the files of the configured split(s)."""

    def __init__(self, pcap_dir: str | os.PathLike[str],
                 split: str | Iterable[str] = "single",
                 snaplen: int | None = DEFAULT_PAYLOAD_SNAPLEN,
                 nanosecond: bool = True, max_open: int = 128, ts_offset_ns: int = 0) -> None:
        splits = (split,) if isinstance(split, str) else tuple(split)
        bad = [s for s in splits if s not in SPLITS]
        if bad or not splits:
            raise ValueError(f"network.pcap.split: unknown {bad or splits!r} "
                             f"(single, process, container, command)")
        if max_open < 1:
            raise ValueError("max_open must be at least 1")
        self.root = Path(pcap_dir)
        self.splits = tuple(dict.fromkeys(splits))
        self.snaplen = snaplen                # payload bytes past the headers, None: all
        self.nanosecond = nanosecond
        self.max_open = max_open
        self.ts_offset_ns = ts_offset_ns      # added to Packet.ts_ns: boot time -> epoch
        self._open: OrderedDict[tuple, PcapWriter] = OrderedDict()
        self._dirs: set[Path] = set()
        self.packets = 0         # packets written to their file(s)
        self.skipped = 0         # not TCP, UDP or ICMP
        self.write_errors = 0    # files that could not be opened or written
        self.files_opened = 0
        self.files_closed = 0    # closed to stay within max_open
        self._logged = False

    def write(self, pkt: Packet, pid: int, comm: str, start_time: int,
              container_id: str | None) -> None:
        data = pkt.data
        keep = capture_length(data, self.snaplen)
        if keep < 0:
            self.skipped += 1
            return
        if keep < len(data):
            data = data[:keep]
        ts = pkt.ts_ns + self.ts_offset_ns
        ok = True
        for split in self.splits:
            w = self._writer(split, pid, comm, start_time, container_id)
            if w is None:
                ok = False
                continue
            try:
                w.write(ts, data, pkt.length)
            except (OSError, ValueError, struct.error) as e:   # a negative timestamp, say
                ok = False
                self._failed(e)
        if ok:
            self.packets += 1

    def _writer(self, split: str, pid: int, comm: str, start_time: int,
                container_id: str | None) -> PcapWriter | None:
        ctr = container_dir(container_id)
        if split == "single":
            key: tuple = ("single",)
        elif split == "process":
            key = ("process", pid, start_time)
        elif split == "container":
            key = ("container", ctr)
        else:
            key = ("command", ctr, comm)
        w = self._open.get(key)
        if w is not None:
            self._open.move_to_end(key)
            return w
        if split == "single":
            path = self.root / "single.pcap"
        elif split == "process":
            path = self.root / "processes" / ctr / f"{safe_name(comm)}_{pid}_{start_time}.pcap"
        elif split == "container":
            path = self.root / "containers" / f"{ctr}.pcap"
        else:
            path = self.root / "commands" / ctr / f"{safe_name(comm)}.pcap"
        try:
            parent = path.parent
            if parent not in self._dirs:
                _mkdirs(parent)
                self._dirs.add(parent)
            w = PcapWriter(path, FILE_SNAPLEN, self.nanosecond)
        except OSError as e:
            self._failed(e)
            return None
        self.files_opened += 1
        self._open[key] = w
        while len(self._open) > self.max_open:
            _, old = self._open.popitem(last=False)
            self.files_closed += 1
            self._close(old)
        return w

    def _close(self, w: PcapWriter) -> None:
        try:
            w.close()
        except OSError as e:
            self._failed(e)

    def _failed(self, e: Exception) -> None:
        self.write_errors += 1
        if not self._logged:
            self._logged = True
            log.warning("pcap: %s (logged once, counted in write_errors)", e)

    def close(self) -> None:
        while self._open:
            _, w = self._open.popitem(last=False)
            self._close(w)

    def __enter__(self) -> PcapSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_pcap(path: str | os.PathLike[str]) -> tuple[dict, list[tuple[int, int, int, bytes]]]:
    """Read a classic pcap back: ({magic, version, snaplen, linktype, nanosecond},
    [(ts_ns, incl_len, orig_len, data)]). For tests and inspection."""
    buf = Path(path).read_bytes()
    magic, major, minor, _, _, snaplen, linktype = _FILE_HDR.unpack_from(buf)
    if magic not in (MAGIC_NS, MAGIC_US):
        raise PcapError(f"{path}: not a little-endian classic pcap")
    ns = magic == MAGIC_NS
    recs = []
    off = _FILE_HDR.size
    while off < len(buf):
        sec, frac, incl, orig = _REC_HDR.unpack_from(buf, off)
        off += _REC_HDR.size
        recs.append((sec * 1_000_000_000 + (frac if ns else frac * 1000), incl, orig,
                     buf[off:off + incl]))
        off += incl
    return ({"magic": magic, "version": (major, minor), "snaplen": snaplen,
             "linktype": linktype, "nanosecond": ns}, recs)
