"""What a new user meets in the first hour: nothing silently does nothing, and the
small things (version, reload messages, counts) say what they mean. Real pytracee
processes, real signals, a real dockerd."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.docker_env import IMAGE, Dockerd, docker
from tests.kernel.cli_proc import PYTRACEE, _no_leftover_tracers, _started, start, stop  # noqa: F401

pytestmark = pytest.mark.usefixtures("require_bpf")


def read_until(proc: subprocess.Popen[bytes], needle: str, limit: int = 50) -> list[str]:
    """stderr lines up to and including the first that contains `needle`."""
    assert proc.stderr is not None
    lines = []
    for _ in range(limit):
        line = proc.stderr.readline().decode()
        assert line, f"pytracee ended before saying {needle!r}: {lines}"
        lines.append(line.rstrip("\n"))
        if needle in line:
            return lines
    raise AssertionError(f"no {needle!r} in {lines}")


def launch(*args: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([str(PYTRACEE), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    _started.append(proc)
    return proc


def test_sighup_without_a_policy_says_there_is_nothing_to_reload() -> None:
    proc = launch("-e", "openat", "-s", "comm=pt-nobody", "-o", "json")
    read_until(proc, "pytracee: tracing")
    proc.send_signal(signal.SIGHUP)
    lines = read_until(proc, "SIGHUP")
    assert lines[-1] == ("pytracee: WARNING pytracee.policy: SIGHUP: nothing to reload (no "
                         "--policy given); tracing goes on with the --events and --scope it "
                         "started with")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "reloaded" not in err.decode()


def test_a_successful_reload_is_reported_at_the_default_log_level(tmp_path: Path) -> None:
    pol = tmp_path / "pol"
    pol.mkdir()
    (pol / "a.yaml").write_text("type: policy\nname: first\nscope: [comm=pt-x]\n"
                                "rules:\n  - event: openat\n")
    proc = launch("-p", str(pol), "-o", "json")
    read_until(proc, "pytracee: tracing")
    (pol / "a.yaml").write_text("type: policy\nname: second\nscope: [comm=pt-x]\n"
                                "rules:\n  - event: close\n")
    proc.send_signal(signal.SIGHUP)
    assert read_until(proc, "reloaded")[-1] == "pytracee: policies reloaded (version 1): second"
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_a_tree_scope_on_a_pid_that_does_not_exist_warns() -> None:
    pid = 4_000_000  # above any pid_max
    proc = launch("-s", f"tree={pid}", "-e", "openat", "-o", "none")
    lines = read_until(proc, "pytracee: tracing")
    assert lines[0] == (f"pytracee: WARNING pytracee.ebpf.tracer: tree={pid} (policy cli): no "
                        f"process {pid} is running, so this scope selects nothing unless a new "
                        "process gets that pid")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    # A running one does not.
    proc = launch("-s", f"tree={os.getpid()}", "-e", "openat", "-o", "none")
    assert read_until(proc, "pytracee: tracing") == [
        "pytracee: tracing 1 events with 1 policy (Ctrl-C to stop)"]
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)


def test_version_names_the_build_the_kernel_and_libbpf() -> None:
    from importlib import metadata

    for argv in (["version"], ["--version"]):
        res = subprocess.run([str(PYTRACEE), *argv], capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        assert lines[0] == f"pytracee {metadata.version('pytracee')}"
        assert re.fullmatch(r"git revision: ([0-9a-f]{12}(\+dirty)?|unknown)", lines[1]), lines[1]
        u = os.uname()
        assert lines[2] == f"kernel: {u.sysname} {u.release} {u.machine}"
        assert re.fullmatch(r"libbpf: \d+\.\d+", lines[3]), lines[3]
        assert len(lines) == 4


def test_the_summary_counts_the_containers_seen(dockerd: Dockerd, busybox_image: str) -> None:
    running = docker("ps", "-q", socket=dockerd.socket).stdout.split()
    proc = start("-e", "sched_process_exec", "-s", "container", "-o", "none")
    for name in ("pt-seen-1", "pt-seen-2"):
        docker("run", "--rm", "--network", "none", "--name", name, IMAGE, "true",
               socket=dockerd.socket)
    _, err = stop(proc)
    # Both are gone by now: the count is of containers seen, not of those left running.
    assert f"containers seen: {len(running) + 2}" in err.splitlines()[-1]


def _signature_ids(analyzed: str) -> list[tuple[str, int]]:
    out = []
    for line in analyzed.splitlines():
        e = orjson.loads(line)
        out.append((e["metadata"]["Properties"]["signatureID"], e["hostProcessId"]))
    return sorted(out)


def test_analyze_detects_over_a_parsed_recording_what_it_detects_over_a_raw_one(
        tmp_path: Path) -> None:
    """option:parse-arguments turns flags and requests into names; analyze reads them back."""
    raw, parsed = tmp_path / "raw.json", tmp_path / "parsed.json"
    events = "-e", "ptrace,security_file_open,sched_process_exec"
    a = start(*events, "-o", f"json:{raw}", "-s", "comm=pt-rec", "-s", "follow")
    b = start(*events, "-o", f"json:{parsed}", "-o", "option:parse-arguments", "-s", "comm=pt-rec",
              "-s", "follow")
    code = textwrap.dedent("""
        import ctypes, os
        ctypes.CDLL(None).prctl(15, b"pt-rec", 0, 0, 0)
        os.close(os.open("/proc/self/mem", os.O_RDWR))           # TRC-1023/1024: /proc/self/mem
        fd = os.memfd_create("pt-rec")
        os.write(fd, open("/bin/true", "rb").read())
        pid = os.fork()
        if pid == 0:
            os.execv(f"/proc/self/fd/{fd}", ["pt-rec"])         # TRC-105: memfd exec
        os.waitpid(pid, 0)
        ctypes.CDLL(None).ptrace(0, 0, 0, 0)  # TRC-102: PTRACE_TRACEME, last (signals now stop us)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    stop(a)
    stop(b)
    flags = [e for e in map(orjson.loads, parsed.read_bytes().splitlines())
             if e["eventName"] == "security_file_open"]
    assert flags and all(isinstance(next(x["value"] for x in e["args"] if x["name"] == "flags"),
                                    str) for e in flags)  # the recording holds names
    found: dict[str, Any] = {}
    for name, rec in (("raw", raw), ("parsed", parsed)):
        res = subprocess.run([str(PYTRACEE), "analyze", str(rec)], capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        found[name] = _signature_ids(res.stdout)
    assert [s for s, _ in found["raw"]] == ["TRC-102", "TRC-1023", "TRC-1024", "TRC-105"]
    assert found["parsed"] == found["raw"]
