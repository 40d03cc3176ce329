"""Artifacts through the CLI on the real kernel: --capture exec/write/mem, option:exec-hash.

Each test runs a workload under its own comm (the scope), then reads the output directory:
exact file names, contents, sha256, modes and manifest lines.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from tests.kernel.cli_proc import start, stop


def _kdev(st: os.stat_result) -> int:
    return os.major(st.st_dev) << 20 | os.minor(st.st_dev)


def _manifest(out: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in (out / "captures.jsonl").read_bytes().splitlines()]


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _run(argv: list[str]) -> int:
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    assert p.wait(timeout=30) == 0
    return p.pid


def _events(out: bytes, name: str) -> list[dict[str, Any]]:
    return [e for e in map(orjson.loads, out.splitlines()) if e["eventName"] == name]


def test_capture_exec_copies_each_binary_once(tmp_path: Path) -> None:
    src = tmp_path / "bin"
    src.mkdir()
    binary = src / "pt-capture-true"
    other = src / "pt-capture-oth"
    shutil.copy("/bin/true", binary)
    shutil.copy("/bin/true", other)
    out = tmp_path / "out" / "captures"  # neither exists yet: both made 0700
    proc = start("-s", "comm=pt-capture-true", "-e", "close", "--capture", "exec",
                 "--capture", f"dir:{out}", "-o", "json")
    pids = [_run([str(binary)]), _run([str(binary)])]
    _run([str(other)])  # out of scope: not captured
    stdout, err = stop(proc)

    files = os.listdir(out / "host")
    assert len(files) == 1, files
    name = files[0]
    ts = int(name.split(".")[1])
    assert name == f"exec.{ts}.pt-capture-true"
    copy = out / "host" / name
    content = binary.read_bytes()
    assert copy.read_bytes() == content
    digest = hashlib.sha256(content).hexdigest()
    assert _mode(copy) == 0o600 and _mode(out / "captures.jsonl") == 0o600
    assert _mode(out) == _mode(out / "host") == _mode(tmp_path / "out") == 0o700
    st = binary.stat()
    assert _manifest(out) == [{
        "kind": "exec", "path": f"host/{name}", "sha256": digest, "size": len(content),
        "pathname": str(binary), "dev": _kdev(st), "inode": st.st_ino, "ctime": st.st_ctime_ns,
        "pid": pids[0], "comm": "pt-capture-true", "timestamp": ts}]
    # The execs came for capture only: not printed, not counted as filtered.
    assert _events(stdout, "sched_process_exec") == []
    assert "filtered in user space: 0," in err
    assert f"captured to {out}: exec 1 ({len(content)} B; failed 0, no source 0), queue full 0" in err


def test_exec_hash_option(tmp_path: Path) -> None:
    binary = tmp_path / "pt-capture-true"
    shutil.copy("/bin/true", binary)
    proc = start("-s", "comm=pt-capture-true", "-e", "sched_process_exec", "-o", "json",
                 "-o", "option:exec-hash")
    _run([str(binary)])
    _run([str(binary)])
    stdout, err = stop(proc)
    execs = _events(stdout, "sched_process_exec")
    assert len(execs) == 2
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    for e in execs:
        args = {a["name"]: a for a in e["args"]}
        assert args["sha256"] == {"name": "sha256", "type": "string", "value": digest}
        assert e["args"][-1]["name"] == "sha256"
    assert "exec-hash: computed 1 " in err and "cached 1, failed 0" in err


def test_without_exec_hash_there_is_no_sha256(tmp_path: Path) -> None:
    binary = tmp_path / "pt-capture-true"
    shutil.copy("/bin/true", binary)
    proc = start("-s", "comm=pt-capture-true", "-e", "sched_process_exec", "-o", "json")
    _run([str(binary)])
    stdout, _ = stop(proc)
    (e,) = _events(stdout, "sched_process_exec")
    assert "sha256" not in {a["name"] for a in e["args"]}


_WRITER = r"""
import ctypes, os, sys
ctypes.CDLL(None).prctl(15, b"pt-writer", 0, 0, 0)
inside, big, outside = sys.argv[1:4]
fd = os.open(inside, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"hello")                          # write at 0
os.writev(fd, [b"-xx", b"-yyy"])                # writev at 5
os.pwrite(fd, b"WORLD", 100)                    # pwrite64 at 100
os.pwritev(fd, [b"pv1", b"pv2"], 40)            # pwritev at 40
os.lseek(fd, 8000, os.SEEK_SET)
os.write(fd, bytes(range(256)) * 40)            # 10240 bytes in 3 chunks, at 8000
os.close(fd)
fd = os.open(big, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
os.write(fd, b"A" * 10)
os.write(fd, os.urandom(200_000))               # 128 KiB captured, the rest counted
os.close(fd)
with open(outside, "wb") as f:                  # outside the prefix: not captured
    f.write(b"not me")
print("done")                                   # a pipe: never captured
"""


def test_capture_write_at_offsets_with_prefix(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    inside, big, outside = tmp_path / "in" / "f.bin", tmp_path / "in" / "big", tmp_path / "o.bin"
    out = tmp_path / "out"
    proc = start("-s", "comm=pt-writer", "-e", "close", "-o", "none",
                 "--capture", f"write={tmp_path}/in/*", "--capture", f"dir:{out}")
    w = subprocess.run([sys.executable, "-c", _WRITER, str(inside), str(big), str(outside)],
                       capture_output=True, timeout=30)
    assert w.returncode == 0 and w.stdout == b"done\n", w.stderr
    _, err = stop(proc)

    def capture_name(p: Path) -> str:
        st = p.stat()
        return f"write.dev-{_kdev(st)}.inode-{st.st_ino}"

    assert sorted(os.listdir(out / "host")) == sorted([capture_name(inside), capture_name(big)])
    f = out / "host" / capture_name(inside)
    assert f.read_bytes() == inside.read_bytes()  # every write, at its offset (holes are zeros)
    assert f.read_bytes()[:18] == b"hello-xx-yyy\0\0\0\0\0\0"
    b = out / "host" / capture_name(big)
    assert b.read_bytes() == big.read_bytes()[:10 + 128 * 1024]
    assert _mode(f) == _mode(b) == 0o600 and _mode(out / "host") == 0o700
    lines = _manifest(out)
    assert [(x["kind"], x["path"], x["pathname"], x["comm"]) for x in lines] == [
        ("write", f"host/{capture_name(inside)}", str(inside), "pt-writer"),
        ("write", f"host/{capture_name(big)}", str(big), "pt-writer")]
    total = 5 + 7 + 5 + 6 + 10240 + 10 + 128 * 1024
    assert (f"write 2 files ({total} B; truncated {200_000 - 128 * 1024} B, unreadable 0, "
            "failed 0)") in err


_MEM = r"""
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(15, b"pt-mem", 0, 0, 0)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                      ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
addr = libc.mmap(None, 8192, 3, 0x22, -1, 0)      # RW, private anonymous
payload = bytes.fromhex(sys.argv[1])
ctypes.memmove(addr, payload, len(payload))
assert libc.mprotect(addr, 8192, 5) == 0           # RX: write removed, exec added
print(hex(addr), flush=True)
time.sleep(1.5)                                    # alive while the region is read
"""


def test_capture_mem_dumps_the_region(tmp_path: Path) -> None:
    out = tmp_path / "out"
    payload = b"\xc3PT-MEM-CAPTURE" + os.urandom(3000)
    proc = start("-s", "comm=pt-mem", "-e", "close", "-o", "none", "--capture", "mem",
                 "--capture", f"dir:{out}")
    p = subprocess.Popen([sys.executable, "-c", _MEM, payload.hex()], stdout=subprocess.PIPE)
    stdout, _ = p.communicate(timeout=30)
    assert p.returncode == 0
    addr = stdout.decode().strip()
    _, err = stop(proc)
    (name,) = os.listdir(out / "host")
    ts = int(name.rsplit("-", 1)[1])
    assert name == f"bin.pid-{p.pid}.ts-{ts}"
    dump = (out / "host" / name).read_bytes()
    assert dump == payload + b"\0" * (8192 - len(payload))
    assert _mode(out / "host" / name) == 0o600
    assert _manifest(out) == [{
        "kind": "mem", "path": f"host/{name}", "sha256": hashlib.sha256(dump).hexdigest(),
        "size": 8192, "addr": addr, "len": 8192, "alert": 4, "prot": 5, "prev_prot": 3,
        "pathname": "", "pid": p.pid, "comm": "pt-mem", "timestamp": ts, "truncated": 0}]
    assert "mem 1 (8192 B; truncated 0 B, failed 0, no source 0)" in err


def test_bad_capture_value_is_one_line_exit_2() -> None:
    from tests.kernel.cli_proc import PYTRACEE

    r = subprocess.run([str(PYTRACEE), "--capture", "write=/tmp"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "write=/tmp" in r.stderr, r.stderr
